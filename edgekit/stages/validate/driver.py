"""``edgekit validate``: every artifact on every target, scored on labelled data, against budgets.

Sources are artifact files (``.tflite`` / ``.onnx``) or directories: a run
directory (``edgekit train`` / ``run``: its ``convert/`` artifacts, its
``model.keras`` as the reference and its held-out ``test.npz`` as the data), a
``convert`` or ``optimize`` output directory. Each artifact × target × thread
count is one *cell*, measured in its own process (see
:mod:`edgekit.stages.validate.cell`): task metrics per named output, agreement with
the Keras reference, size, init time, peak memory and latency p50/p90/p99 at
batch 1. A target that cannot run a file here is ``unavailable`` with the
reason; a file that fails is ``failed`` with the reason; neither stops the rest.

The parent process never imports TensorFlow: the reference runs in a child of
the build lane when TensorFlow is installed, and is reported unavailable
otherwise, so the same command runs on a Raspberry Pi.

Example:
    >>> report = validate(["runs/demo/mobilenet_digits"], threads=[1, 2])  # doctest: +SKIP
    >>> [(r["artifact"], r["metrics"]["head"]["accuracy"]) for r in report["results"]][:1]  # doctest: +SKIP
    [('convert/model_fp32.tflite', 0.991071)]
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.budgets import Budgets, check
from edgekit.common.io import sha256_file, tool_versions
from edgekit.common.metrics import KINDS, agreement, main_metric, task_metrics
from edgekit.contract import Contract
from edgekit.errors import BudgetExceededError, InferenceError, InputError
from edgekit.rundir import Record, RunDir
from edgekit.runtime import TensorSpec, load
from edgekit.runtime.files import model_format, read_model_bytes
from edgekit.runtime.targets import TARGETS
from edgekit.stages.validate.cell import Cell, run_cell
from edgekit.stages.validate.data import LabelledData, load_labelled
from edgekit.stages.validate.reference import reference_outputs

log = logging.getLogger(__name__)
MODEL_SUFFIXES = (".tflite", ".onnx")
RUNTIME_TOOLS = ("edgekit", "onnxruntime", "ai-edge-litert", "numpy")
Progress = Callable[[str, int, int], None]
# the run directory's task type (edgekit train) → how its single output is scored
RUN_TASK_KINDS = {"classifier": "classifier", "forecaster": "forecaster", "anomaly_scorer": "anomaly_scorer"}


@dataclass
class Subject:
    """What a validation looks at, gathered from the sources and their manifests."""

    artifacts: list[dict[str, Any]] = field(default_factory=list)  # path, format, precision
    reference: Path | None = None  # the Keras model
    run_task: dict[str, Any] = field(default_factory=dict)  # labels, scaler, threshold (edgekit train)
    conversion: dict[str, Any] = field(default_factory=dict)  # task and output kinds (edgekit convert)
    contract: dict[str, Any] = field(default_factory=dict)  # the model's contract (edgekit convert)
    data: Path | None = None  # the run's held-out test split
    settings: dict[str, Any] = field(default_factory=dict)  # the recipe's validate section
    root: Path | None = None  # where the report goes by default
    load: dict[str, Any] = field(default_factory=dict)  # how convert loaded the source: custom objects, unsafe, outputs


def _artifact_entry(path: Path, listed: dict[str, Any] | None) -> dict[str, Any]:
    """What validate needs of an artifact: its format, precision and (a scorer's) own threshold from convert."""
    listed = listed or {}
    precision = listed.get("precision")
    if precision is None:
        from edgekit.inspection import inspect_model

        precision = inspect_model(path)["quantization"]
    errors = listed.get("layer_errors") or (listed.get("search") or {}).get("layer_errors")
    return {"path": path, "format": model_format(path), "precision": precision, "threshold": listed.get("threshold"),
            "layer_errors": errors if isinstance(errors, list) else None}  # fmt: skip


def _from_convert_dir(subject: Subject, folder: Path, manifest: Record) -> None:
    for a in manifest["artifacts"]:
        if not (folder / a["path"]).is_file():
            raise InputError(f"{folder / a['path']}: listed in {RunDir(folder).manifest} but missing")
        subject.artifacts.append(_artifact_entry(folder / a["path"], a))
    subject.conversion = subject.conversion or manifest["conversion"]
    subject.contract = subject.contract or manifest.get("contract") or {}
    subject.run_task = subject.run_task or manifest["task"]
    source = Path(manifest["source"]["path"])
    settings = manifest.get("settings") or {}
    subject.load = subject.load or {"custom_objects": _recorded_custom_objects(manifest["source"]),
                                    "outputs": settings.get("outputs")}  # fmt: skip
    if (source.suffix in (".keras", ".h5") and source.is_file()) or (source / "saved_model.pb").is_file():
        subject.reference = subject.reference or source
        source = source.parent  # a run directory's model.keras: its test split and recipe count too
    run = RunDir(source).read_record() if source.is_dir() else None
    if run:
        _from_run_dir(subject, source, run, artifacts=False)


def _recorded_custom_objects(source: dict[str, Any]) -> str | None:
    """The custom objects file convert was given, when it is still the file convert ran (same sha256)."""
    path = source.get("custom_objects")
    if path and Path(path).is_file() and sha256_file(path) == source.get("custom_objects_sha256"):
        return path
    return None


def _from_run_dir(subject: Subject, folder: Path, manifest: Record, artifacts: bool = True) -> None:
    run = RunDir(folder)
    subject.reference = subject.reference or (run.model if run.model.is_file() else None)
    subject.run_task = subject.run_task or manifest["task"]
    subject.settings = subject.settings or (manifest.get("recipe") or {}).get("validate") or {}
    if subject.data is None and run.test_split.is_file():
        subject.data = run.test_split
    if artifacts and run.convert.manifest.is_file():
        _from_convert_dir(subject, run.convert.root, run.convert.read_record("convert") or {})


def gather(sources: Sequence[str | Path]) -> Subject:
    """Artifacts, reference, task and default data from files and run / convert / optimize directories.

    Example:
        >>> gather(["nothing_here/"])
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: nothing_here/: no such file or directory
    """
    subject = Subject()
    for source in sources:
        p = Path(source)
        if not p.exists():
            raise InputError(f"{source}: no such file or directory")
        subject.root = subject.root or (p if p.is_dir() else p.parent)
        if p.is_file():
            read_model_bytes(p)  # one clear line for a wrong file, before any work
            listed = RunDir(p.parent).read_record() or {}
            entry = next((a for a in listed.get("artifacts", []) if a["path"] == p.name), None)
            subject.artifacts.append(_artifact_entry(p, entry))
            if listed.get("stage") == "convert":  # the reference, task and data of the conversion it came from
                context = Subject()
                _from_convert_dir(context, p.parent, listed)
                for attr in ("reference", "run_task", "conversion", "contract", "data", "settings"):
                    setattr(subject, attr, getattr(subject, attr) or getattr(context, attr))
            continue
        manifest = RunDir(p).read_record() or {}
        if manifest.get("stage") == "convert":
            _from_convert_dir(subject, p, manifest)
        elif manifest:
            _from_run_dir(subject, p, manifest)
        else:
            models = sorted(f for f in p.iterdir() if f.suffix in MODEL_SUFFIXES)
            subject.artifacts.extend(_artifact_entry(f, None) for f in models)
    if not subject.artifacts:
        raise InputError(f"{', '.join(map(str, sources))}: no .tflite or .onnx artifacts to validate")
    return subject


def _io_specs(artifacts: list[dict[str, Any]]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of the first artifact the CPU loads (an Edge TPU file is read from its flatbuffer)."""
    from edgekit.formats.tflite import parse_tflite
    from edgekit.runtime.tflite import io_specs

    first = artifacts[0]["path"]
    for a in artifacts:
        try:
            with load(a["path"]) as runner:
                return runner.inputs, runner.outputs
        except InferenceError:
            continue
    return io_specs(parse_tflite(read_model_bytes(first), str(first)))


def _windowed_specs(subject: Subject) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
    """Streaming artifacts (``convert --streaming``) are validated on the windowed model's data and reference: its
    input and output, as the convert record keeps them; each window is stepped through from zero state."""
    streaming = subject.conversion.get("streaming") or {}
    if "window_input" not in streaming:
        return None
    given, output = streaming["window_input"], streaming["window_output"]
    window = TensorSpec(given["name"], tuple(given["shape"]), given["dtype"])
    return [window], [TensorSpec(output["name"], tuple(output["shape"]), "float32")]


def output_kinds(
    outputs: list[TensorSpec], inputs: list[TensorSpec], subject: Subject, data: LabelledData, task: str | None
) -> dict[str, dict[str, str]]:
    """How each named output is scored (a kind of :data:`edgekit.common.metrics.KINDS`) and why.

    ``--task`` wins (single-output models); then the run's task (``edgekit train`` knows a forecaster
    and an anomaly scorer); then what ``convert`` detected in the Keras graph; then the shapes and labels.

    Example:
        >>> output_kinds(outs, ins, Subject(), data, "forecaster")  # doctest: +SKIP
        {'value': {'kind': 'forecaster', 'why': 'given with --task'}}
    """
    names = [s.name for s in outputs]
    if task is not None:
        if task not in KINDS:
            raise InputError(f"--task must be one of {', '.join(KINDS)}, got {task!r}")
        if len(names) != 1:
            raise InputError(f"--task applies to single-output models; this one has outputs {names}")
        return {names[0]: {"kind": task, "why": "given with --task"}}
    run_kind = RUN_TASK_KINDS.get(subject.run_task.get("type", ""))
    if run_kind and len(names) == 1:
        return {names[0]: {"kind": run_kind, "why": f"recorded by the run ({subject.run_task['type']})"}}
    detected = subject.conversion.get("output_kinds") or {}
    kinds: dict[str, dict[str, str]] = {}
    for spec in outputs:
        if subject.conversion.get("task") == "autoencoder" and len(names) == 1:
            kinds[spec.name] = {"kind": "autoencoder", "why": "convert detected an autoencoder"}
        elif spec.name in detected:
            kinds[spec.name] = {"kind": detected[spec.name]["kind"], "why": f"convert: {detected[spec.name]['why']}"}
        elif len(inputs) == 1 and len(outputs) == 1 and spec.shape[1:] == inputs[0].shape[1:]:
            kinds[spec.name] = {"kind": "autoencoder", "why": "output shaped like the input"}
        else:
            labels = (data.y or {}).get(spec.name)
            integer = labels is not None and np.array_equal(labels, np.round(labels)) and labels.ndim == 1
            if integer and spec.shape[-1] not in (None, 1):
                kinds[spec.name] = {"kind": "classifier", "why": f"integer labels, {spec.shape[-1]} output values"}
            else:
                kinds[spec.name] = {"kind": "regressor", "why": "no manifest and no --task: scored as a regressor"}
    return kinds


def _check_labels(data: LabelledData, outputs: list[TensorSpec], kinds: dict[str, dict[str, str]]) -> None:
    """Labels that cannot belong to the outputs: one line naming both sizes."""
    for spec in outputs:
        labels = (data.y or {}).get(spec.name)
        if labels is None:
            continue
        kind, width = kinds[spec.name]["kind"], int(np.prod([d or 1 for d in spec.shape[1:]]))
        if kind == "classifier":
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = data.y[spec.name] = labels[:, 0]
            elif labels.ndim == 2 and labels.shape[1] == width:
                labels = data.y[spec.name] = labels.argmax(-1)  # one-hot
            if labels.ndim != 1 or not np.array_equal(labels, np.round(labels)):
                raise InputError(f"labels of {spec.name!r}: class indices expected, got shape {labels.shape}")
            if labels.min() < 0 or labels.max() >= width:
                raise InputError(f"labels of {spec.name!r} go from {labels.min():g} to {labels.max():g}; "
                                 f"the output has {width} classes (0..{width - 1})")  # fmt: skip
        elif kind == "autoencoder" and labels.shape[1:] == tuple(d or 1 for d in spec.shape[1:]):
            del data.y[spec.name]  # reconstruction targets (the input itself): scored by MSE, no labels
        elif kind in ("binary-classifier", "anomaly_scorer", "autoencoder"):
            if not set(np.unique(labels).tolist()) <= {0, 1}:
                raise InputError(f"labels of {spec.name!r}: 0 / 1 expected for a {kind}")
        elif labels.size // len(labels) != width:
            raise InputError(f"labels of {spec.name!r} have {labels.size // len(labels)} value(s) per sample; "
                             f"the output has {width}")  # fmt: skip
    if data.y == {}:
        data.y = None


def _score(
    outputs: dict[str, np.ndarray],
    data: LabelledData,
    kinds: dict[str, dict[str, str]],
    run_task: dict[str, Any],
    threshold: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Task metrics per output (empty where there are no labels and the kind needs them); a scorer is judged at
    ``threshold`` (its own, calibrated by convert), else at the run's."""
    x = next(iter(data.x.values()))
    scored = {}
    for name, out in outputs.items():
        kind = kinds[name]["kind"]
        labels = (data.y or {}).get(name)
        if labels is None and kind != "autoencoder":
            continue
        naive = x[:, -1, -1] if kind == "forecaster" and x.ndim == 3 else None
        at = (threshold if threshold is not None else run_task.get("threshold")) if kind == "anomaly_scorer" else None
        scored[name] = task_metrics(kind, out, labels, x=x, threshold=at, naive=naive)
    return scored


def _agreement(
    outputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    kinds: dict[str, dict[str, str]],
    thresholds: tuple[float | None, float | None],
) -> dict[str, dict[str, Any]]:
    """Agreement per output; ``thresholds`` are the reference's and this artifact's (a scorer's decisions)."""
    ref_at, own_at = thresholds
    return {
        name: agreement(kinds[name]["kind"], reference[name], out, threshold=ref_at, output_threshold=own_at)
        for name, out in outputs.items() if name in reference
    }  # fmt: skip


def _mark_pareto(results: list[dict[str, Any]], first_output: str, kind: str) -> None:
    """Per target, mark cells no other cell beats on both latency (p50) and the main metric."""
    for target in {r["target_requested"] for r in results}:
        cells = [r for r in results if r["target_requested"] == target and r["status"] == "measured"]
        scored = [(r, (r.get("metrics") or {}).get(first_output, {})) for r in cells]
        for r, m in scored:
            name, higher = main_metric(kind, m)
            value = m.get(name)
            r["pareto"] = value is not None and not any(
                o is not r and om.get(name) is not None
                and o["latency_ms"]["p50"] <= r["latency_ms"]["p50"]
                and (om[name] >= value if higher else om[name] <= value)
                and (o["latency_ms"]["p50"] < r["latency_ms"]["p50"] or om[name] != value)
                for o, om in scored
            )  # fmt: skip


def recommend(
    results: list[dict[str, Any]], broken: list[dict[str, Any]], targets: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per target: the smallest and the fastest artifact (at its best thread count) inside every budget.

    Example:
        >>> recommend([], [], ["gpu"])["gpu"]["reason"]
        'nothing measured on gpu'
    """
    broken_cells = {(b["artifact"], b["target"], b["threads"]) for b in broken}
    advice: dict[str, dict[str, Any]] = {}
    for target in targets:
        ok = [
            r for r in results
            if r["target_requested"] == target and r["status"] == "measured"
            and (r["artifact"], target, r["threads"]) not in broken_cells
        ]  # fmt: skip
        if not ok:
            measured = any(r["target_requested"] == target and r["status"] == "measured" for r in results)
            reason = "every measured artifact breaks a budget" if measured else f"nothing measured on {target}"
            advice[target] = {"smallest": None, "fastest": None, "reason": reason}
            continue
        smallest = min(ok, key=lambda r: (r["size_bytes"], r["latency_ms"]["p50"]))
        fastest = min(ok, key=lambda r: (r["latency_ms"]["p50"], r["size_bytes"]))
        advice[target] = {
            "smallest": {"artifact": smallest["artifact"], "size_bytes": smallest["size_bytes"]},
            "fastest": {
                "artifact": fastest["artifact"],
                "threads": fastest["threads"],
                "p50_ms": fastest["latency_ms"]["p50"],
            },
        }
    return advice


def _check_writable(folder: Path) -> None:
    """Fail before any measuring when the report folder cannot be created or written."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise InputError(f"--out {folder}: not writable ({existing} is not a writable folder)")


def _targets_and_threads(targets: Sequence[str], threads: Sequence[int]) -> None:
    unknown = [t for t in targets if t not in (*TARGETS, "pi")]
    if unknown or not targets:
        raise InputError(f"unknown target(s) {unknown or targets} (choose from {', '.join((*TARGETS, 'pi'))})")
    if not threads or any(t < 1 for t in threads):
        raise InputError(f"thread counts must be >= 1, got {list(threads)}")


def validate(
    sources: str | Path | Sequence[str | Path],
    *,
    data: str | Path | None = None,
    targets: Sequence[str] | None = None,
    threads: Sequence[int] | None = None,
    task: str | None = None,
    out: str | Path | None = None,
    budgets: dict[str, float | None] | None = None,
    reference: bool = True,
    unsafe: bool = False,
    custom_objects: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Validate artifacts; write ``report.json``, ``report.md`` and ``report.html`` to ``out``; return the report.

    ``targets`` / ``threads`` / ``budgets`` default to the run recipe's ``validate`` section, then to
    ``cpu`` / ``1`` / none. ``unsafe`` and ``custom_objects`` load the Keras reference as ``convert`` does
    (Lambda layers, the user's own classes). Raises :class:`~edgekit.errors.BudgetExceededError` (exit 4)
    after writing the report when a measured cell breaks a budget, and :class:`~edgekit.errors.InputError` (exit 2) when
    nothing could be measured at all.

    Example:
        >>> r = validate(["model_int8.tflite"], data="test.npz", budgets={"max_latency_ms": 5})  # doctest: +SKIP
        >>> r["results"][0]["status"], r["budgets_broken"]  # doctest: +SKIP
        ('measured', [])
    """
    from edgekit.stages.validate.report import write_reports

    subject = gather([sources] if isinstance(sources, str | Path) else sources)  # one path, or several
    settings = subject.settings
    targets = list(targets or settings.get("targets") or ["cpu"])
    threads = list(threads or settings.get("threads") or [1])
    _targets_and_threads(targets, threads)
    limits = Budgets(**(settings.get("budgets") or {})).merged(budgets or {})
    inputs, outputs = _windowed_specs(subject) or _io_specs(subject.artifacts)
    data_path = data or subject.data
    if data_path is None:
        raise InputError("no data: pass --data (an .npz with x and y, an image folder, a CSV) or a run directory")
    contract = Contract.from_dict(subject.contract) if subject.contract else None
    labelled = load_labelled(data_path, inputs, outputs, contract)
    kinds = output_kinds(outputs, inputs, subject, labelled, task)
    _check_labels(labelled, outputs, kinds)
    out_dir = Path(out) if out is not None else RunDir(subject.root or Path(".")).validate.root
    _check_writable(out_dir)
    work = Path(tempfile.mkdtemp(prefix="edgekit-validate-"))
    try:
        recorded = subject.load  # what convert was told, unless told otherwise here
        load = {  # never --unsafe unless given here: a record cannot turn Keras' safe_mode off
            "unsafe": unsafe,
            "outputs": recorded.get("outputs"),
            "custom_objects": str(custom_objects) if custom_objects else recorded.get("custom_objects"),
        }
        use = load if reference else None
        report, arrays = _measure(subject, labelled, kinds, targets, threads, use, work, progress)
        broken = check(report["results"], report["reference"], {k: v["kind"] for k, v in kinds.items()}, limits)
        report["budgets"] = limits.active()
        report["budgets_broken"] = broken
        report["recommendations"] = recommend(report["results"], broken, targets)
        report["layer_errors"] = layer_errors_of_broken(subject.artifacts, report["results"], broken)
        if not any(r["status"] in ("measured", "checked") for r in report["results"]):
            reasons = sorted({r["reason"] for r in report["results"]})
            raise InputError(f"nothing could be measured: {'; '.join(reasons)}")
        report["data"]["path"] = str(data_path)
        report["report_dir"] = str(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_reports(report, arrays, out_dir, next(iter(labelled.x.values())))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if broken:
        error = BudgetExceededError(
            f"{len(broken)} budget(s) broken (report in {out_dir}): " + "; ".join(b["message"] for b in broken)
        )
        error.report = report  # the CLI still prints the table
        raise error
    return report


def layer_errors_of_broken(
    artifacts: list[dict[str, Any]], results: list[dict[str, Any]], broken: list[dict[str, Any]]
) -> dict[str, Any]:
    """By artifact label, for each quantized artifact that broke a budget: the per-layer errors ``convert``
    measured (graph order, and the five worst), or why there are none.

    Example:
        >>> art = {"path": "m_int8.tflite", "precision": "int8", "layer_errors": [{"name": "t", "snr_db": 3.0}]}
        >>> layer_errors_of_broken([art], [{"artifact": "m_int8.tflite", "path": "m_int8.tflite"}],
        ...                        [{"artifact": "m_int8.tflite"}])["m_int8.tflite"]["worst"]
        [{'name': 't', 'snr_db': 3.0}]
    """
    labels = {r["path"]: r["artifact"] for r in results}
    out: dict[str, Any] = {}
    for artifact in artifacts:
        label = labels.get(str(artifact["path"]))
        if artifact["precision"] in ("fp32", "fp16") or not any(b["artifact"] == label for b in broken):
            continue
        errors = artifact.get("layer_errors")
        out[label] = (
            {"layers": errors, "worst": sorted(errors, key=lambda e: e["snr_db"])[:5]}
            if errors
            else {"unavailable": "convert measured no per-layer errors for this file (within its conversion "
                                 "tolerance, or not a TFLite int8 / 16x8 / mixed file)"}
        )  # fmt: skip
    return out


def _measure(
    subject: Subject,
    data: LabelledData,
    kinds: dict[str, dict[str, str]],
    targets: list[str],
    threads: list[int],
    use_reference: dict[str, Any] | None,
    work: Path,
    progress: Progress | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the reference and every cell; return the report (without budgets) and the arrays the plots need."""
    data_file = data.inputs_file(work)
    ref_outputs, ref_reason = None, "not asked for (--no-reference)"
    if subject.reference is None:
        ref_reason = "no Keras model beside these artifacts"
    elif use_reference is not None:
        if progress:
            progress("reference: the Keras model", 0, 1)
        ref_outputs, ref_reason = reference_outputs(subject.reference, data_file, work / "reference", use_reference)
    reference = {
        "model": str(subject.reference) if subject.reference else None,
        "status": "measured" if ref_outputs is not None else "unavailable",
        "reason": ref_reason if ref_outputs is None else None,
        "metrics": _score(ref_outputs, data, kinds, subject.run_task) if ref_outputs is not None else None,
    }
    streaming = subject.conversion.get("streaming") or {}
    stream_output = (streaming.get("window_output") or {}).get("name")
    cells = [
        (a, Cell(str(a["path"]), target, n, stream_output, streaming.get("window_reduce")))
        for a in subject.artifacts
        for target in targets
        for n in (threads[:1] if target == "pi" else threads)
    ]  # fmt: skip  (pi: what it computes, not its speed)
    on_cpu: dict[str, dict[str, np.ndarray]] = {}  # artifact → its first cpu cell's outputs (the pi cells' x86 twin)
    results, arrays = [], {"outputs": {}, "times_ms": {}, "labels": data.y, "reference": ref_outputs}
    agree_with, agree_name = ref_outputs, f"keras: {subject.reference}" if ref_outputs is not None else None
    agree_at = subject.run_task.get("threshold")  # the reference's own threshold (a scorer's decisions)
    root = subject.root or Path(".")
    for i, (artifact, cell) in enumerate(cells):
        label = _relative(artifact["path"], root)
        if progress:
            progress(f"{label} on {cell.target}, {cell.threads} thread(s)", i, len(cells))
        result, outputs_npz = run_cell(cell, data_file, work / f"cell{i}")
        entry: dict[str, Any] = {
            "artifact": label, "path": str(artifact["path"]), "format": artifact["format"],
            "precision": artifact["precision"], "size_bytes": Path(artifact["path"]).stat().st_size,
            "target_requested": cell.target, "target_used": result.get("target_used"), "threads": cell.threads,
            "status": result["status"], "reason": result.get("reason"),
            "metrics": None, "agreement": None, "latency_ms": None, "init_ms": None, "peak_rss_mb": None,
        }  # fmt: skip
        if result["status"] in ("measured", "checked"):
            entry.update({k: result[k] for k in ("latency_ms", "init_ms", "peak_rss_mb", "backend", "samples")})
            entry.update({k: result[k] for k in ("latency_per", "steps_per_window") if k in result})
            if result["status"] == "checked":
                entry.update(emulated=result["emulated"], latency_reason=result["latency_reason"])
            if "fully_accelerated" in result:
                entry["fully_accelerated"] = result["fully_accelerated"]
                entry["fallback_reason"] = result.get("fallback_reason")
            with np.load(outputs_npz) as f:
                outs = {k.split(":", 1)[1]: f[k] for k in f.files if k.startswith("y:")}
                arrays["times_ms"][i] = f["times_ms"]
            if set(outs) != set(kinds) and len(outs) == len(kinds):  # another file of the same model, other names
                outs = dict(zip(kinds, outs.values(), strict=True))
            arrays["outputs"][i] = outs
            own_at = artifact["threshold"] if artifact["threshold"] is not None else subject.run_task.get("threshold")
            if agree_with is None and artifact["precision"] == "fp32":
                agree_with, agree_name, agree_at = outs, f"fp32 artifact: {label}", own_at
            entry["metrics"] = _score(outs, data, kinds, subject.run_task, artifact["threshold"])
            entry["agreement"] = _agreement(outs, agree_with, kinds, (agree_at, own_at)) if agree_with else None
            if cell.target == "cpu":
                on_cpu.setdefault(str(artifact["path"]), outs)
            elif cell.target == "pi" and str(artifact["path"]) in on_cpu:  # the same file, x86 against aarch64
                entry["agreement_with_cpu"] = _agreement(outs, on_cpu[str(artifact["path"])], kinds, (own_at, own_at))
            if artifact["threshold"] is not None:
                entry["threshold"] = artifact["threshold"]
        results.append(entry)
    if progress:
        progress("done", len(cells), len(cells))
    first = next(iter(kinds))
    _mark_pareto(results, first, kinds[first]["kind"])
    report = {
        "data": {"path": None, "samples": data.n, "labelled": data.y is not None, **data.info},
        "outputs": kinds,
        "run_task": subject.run_task,
        "targets": targets,
        "threads": threads,
        "host": {"machine": platform.machine(), "system": platform.system()},  # where the latencies were measured
        "reference": reference,
        "agreement_reference": agree_name,
        "results": results,
        "tools": {k: v for k, v in tool_versions().items() if k in RUNTIME_TOOLS},
    }
    return report, arrays


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)

"""``edgekit bundle``: one folder (or zip) per platform that an app consumes without guessing.

Every bundle holds the chosen ``.tflite`` (the manifest also embedded in it), ``labels.txt``
where there are labels, and ``edgekit.json`` (schema in ``edgekit/bundling/edgekit.schema.json``):
inputs and their preprocessing, outputs and their post-processing, recurrent state, the
validation figures that chose the artifact and a sha256 per file. Raspberry Pi and Coral
bundles add ``run.py`` and ``requirements.txt``; Android and iOS bundles an ``assets/`` layout
and a Kotlin or Swift snippet written for this model's tensors.

Which artifact: from a run directory's validate report, the fastest TFLite file inside every
budget on the platform's target (the CPU for the Pi and phones); without a report, the
full-integer int8 file if its conversion check passed, else fp16, else fp32. Coral takes the Edge-TPU-compiled
file when ``convert --to edgetpu`` produced one. Runtime lane only: no TensorFlow.

Example:
    >>> manifest = bundle("runs/mobilenet_digits", "rpi", out="bundles/digits_rpi")  # doctest: +SKIP
    >>> manifest["model"]["file"], manifest["task"]  # doctest: +SKIP
    ('model_int8.tflite', 'classifier')
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.common.hints import with_hint
from edgekit.common.io import sha256_file
from edgekit.contract import Contract, contract_of_file, read_labels, tflite_contract, with_kinds
from edgekit.errors import BudgetExceededError, InputError
from edgekit.formats.metadata import embed_metadata
from edgekit.formats.tflite import parse_tflite, quantization_kind
from edgekit.rundir import SCHEMA_VERSION, RunDir, convert_entry
from edgekit.rundir import run_task as run_task_of
from edgekit.runtime.files import read_model_bytes
from edgekit.stages.bundle import templates
from edgekit.stages.bundle.app import SIGNATURE_FILE
from edgekit.stages.bundle.loader import labels_checked
from edgekit.stages.bundle.signing import sign_manifest, signer_key_id
from edgekit.stages.bundle.spec import (
    class_output,
    io_entries,
    postprocessing,
    unknown_image_ranges,
    validate_spec,
    with_run_shapes,
)

PLATFORMS = ("rpi", "coral", "android", "ios")
TARGET_OF = {"rpi": "cpu", "coral": "edgetpu", "android": "cpu", "ios": "cpu"}
PRECISION_ORDER = ("int8", "mixed", "fp16", "fp32", "dynamic", "16x8")


@dataclass
class Choice:
    """The artifact a bundle carries, and why."""

    path: Path
    precision: str
    reason: str
    task: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    contract: Contract | None = None
    verdict: dict[str, Any] | None = None  # convert's verdict on the file: {"verdict", "parity"}


def _convert_dir(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    for candidate in (RunDir(folder).convert, RunDir(folder)):
        record = candidate.read_record() or {}
        if record.get("stage") == "convert":
            return candidate.root, dict(record)
    return None


def _report(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The validate report of a run directory (``validate/report.json``, or ``report.json`` beside it), read once."""
    run = RunDir(folder)
    path = next((p for p in (run.validate.report_json, run.report_json) if p.is_file()), None)
    return (path, dict(RunDir(path.parent).read_record("validate") or {})) if path is not None else None


def _validation(found: tuple[Path, dict[str, Any]] | None, artifact: Path) -> dict[str, Any] | None:
    """The validate report's measured rows for ``artifact`` (metrics, agreement, latency per thread count)."""
    if found is None:
        return None
    report_path, report = found
    rows = [
        r for r in report["results"] if Path(r["path"]).resolve() == artifact.resolve() and r["status"] == "measured"
    ]
    if not rows:
        return None
    return {
        "report": str(report_path),
        "data": report.get("data", {}).get("source") if isinstance(report.get("data"), dict) else None,
        "metrics": rows[0]["metrics"],
        "agreement": rows[0]["agreement"],
        "latency_ms": {f"{r['target_used']}_{r['threads']}t": r["latency_ms"] for r in rows},
        "budgets_broken": [b for b in report.get("budgets_broken", []) if b.get("artifact") == rows[0]["artifact"]],
    }


def choose_artifact(source: str | Path, platform: str, allow_over_budget: bool = False) -> Choice:
    """The TFLite file a ``platform`` bundle carries from ``source`` (a run / convert directory or a file).

    A file convert marked out of tolerance, or one that broke a validate budget, is never chosen: when no other
    file is left, :class:`~edgekit.errors.BudgetExceededError` (exit 4) names the closest one, which
    ``allow_over_budget`` ships instead.

    Example:
        >>> choose_artifact("runs/lstm_sunspots", "android").precision  # doctest: +SKIP
        'fp32'
    """
    src = Path(source)
    if not src.exists():
        raise InputError(f"{source}: no such file or directory")
    if src.is_file():
        if src.suffix != ".tflite":
            raise InputError(with_hint(f"{source}: bundles carry TFLite models (LiteRT on the Pi, Coral, Android and "
                                       "iOS); give a .tflite file or a run directory", src))  # fmt: skip
        model = parse_tflite(read_model_bytes(src), str(src))
        precision = "edgetpu" if model.edgetpu_compiled else quantization_kind(model)
        recorded, entry = convert_entry(src) or (None, None)
        contract, _ = contract_of_file(src, model)  # the record's beside it, else what the graph says
        choice = Choice(src, precision, "the file given", _run_task(recorded), contract=contract,
                        verdict=_verdict(entry))  # fmt: skip
        if entry is not None and entry.get("verdict") == "out_of_tolerance" and not allow_over_budget:
            raise BudgetExceededError(
                f"{source}: convert marked it out of tolerance ({_parity_line(entry)}); "
                "pass --allow-over-budget to ship it anyway"
            )
        return choice
    found = _convert_dir(src)
    if found is None:
        raise InputError(f"{source}: no convert manifest here or in {source}/convert (run edgekit convert first)")
    folder, manifest = found
    tflite = {a["precision"]: a for a in manifest.get("artifacts", [])
              if a["format"] == "tflite" and a.get("verdict") in ("pass", "unchecked", "out_of_tolerance")}  # fmt: skip
    choice = _choose(src, platform, folder, manifest, tflite, allow_over_budget)
    entry = tflite.get(choice.precision, {})
    choice.contract, choice.verdict = _contract(manifest), _verdict(entry)
    if entry.get("threshold") is not None:  # a scorer's own threshold, calibrated by convert on its own scores
        rule = entry["threshold_calibration"]["rule"]
        choice.task = {**choice.task, "threshold": entry["threshold"], "threshold_method": rule}
    return choice


def streaming_source(source: str | Path) -> Path:
    """``bundle --streaming``: the run's streaming conversion (``<run>/convert_streaming``, or a convert folder
    whose record says it is streaming).

    Example:
        >>> streaming_source("runs/none")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: runs/none: no streaming artifacts (a recipe with convert: {streaming: true}, ...
    """
    for folder in (RunDir(source).convert_streaming.root, Path(source)):
        found = _convert_dir(folder) if folder.is_dir() else None
        if found is not None and (found[1].get("conversion") or {}).get("streaming"):
            return found[0]
    raise InputError(f"{source}: no streaming artifacts (a recipe with convert: {{streaming: true}}, or edgekit "
                     "convert --streaming)")  # fmt: skip


def _run_task(manifest: dict[str, Any] | None) -> dict[str, Any]:
    return dict((manifest or {}).get("task") or {})


def _contract(manifest: dict[str, Any] | None) -> Contract | None:
    data = (manifest or {}).get("contract")
    return Contract.from_dict(data) if data else None


def _verdict(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if not entry or "verdict" not in entry:
        return None
    return {"verdict": entry["verdict"], "parity": _parity_line(entry)}


def _parity_line(entry: dict[str, Any]) -> str:
    p = entry.get("parity") or {}
    if "unavailable" in p:
        return f"unchecked: {p['unavailable']}"
    line = f"max abs {p.get('max_abs_error', float('nan')):.2g}"
    return line + (f", top-1 agreement {p['top1_agreement']:.2f}" if "top1_agreement" in p else "")


def _closeness(entry: dict[str, Any]) -> tuple[float, float]:
    """Sort key of out-of-tolerance files: highest top-1 agreement, then smallest error first."""
    p = entry.get("parity") or {}
    return (-p.get("top1_agreement", 0.0), p.get("max_abs_error", float("inf")))


def _choose(
    src: Path,
    platform: str,
    folder: Path,
    manifest: dict[str, Any],
    tflite: dict[str, dict[str, Any]],
    allow_over_budget: bool,
) -> Choice:
    """The platform's file among a convert folder's TFLite artifacts (``tflite``, by precision), and why."""
    report = _report(src)
    run_task = run_task_of(src) or manifest.get("task") or {}
    outside = {str((folder / a["path"]).resolve()) for a in tflite.values() if a.get("verdict") == "out_of_tolerance"}
    if platform == "coral":
        int8 = tflite.get("int8")
        if int8 is not None and int8.get("verdict") == "out_of_tolerance" and not allow_over_budget:
            raise BudgetExceededError(f"{src}: the Coral bundle needs the int8 file (or its compiled twin), and "
                                      f"convert marked {int8['path']} out of tolerance ({_parity_line(int8)}); pass "
                                      "--allow-over-budget to ship it anyway")  # fmt: skip
        if "edgetpu" in tflite:
            path = folder / tflite["edgetpu"]["path"]
            return Choice(path, "edgetpu", "compiled for the Edge TPU by edgetpu_compiler", run_task)
        if int8 is None:
            raise InputError(f"{src}: no full-integer tflite:int8 artifact for the Coral "
                             "(edgekit convert MODEL --to edgetpu --calib DATA)")  # fmt: skip
        why = (manifest.get("edgetpu") or {}).get("compiler") or {}
        reason = why.get("reason") or why.get("error") or "no edgetpu artifact in the convert manifest"
        path = folder / int8["path"]
        return Choice(path, "int8", f"not compiled for the Edge TPU ({reason}): runs on the CPU until compiled",
                      run_task, _validation(report, path))  # fmt: skip
    pick = _smallest_for_the_pi if platform == "rpi" else functools.partial(_recommended, target=TARGET_OF[platform])
    recommended = pick(report, outside)
    if recommended is not None and recommended[0].is_file():
        path, why = recommended
        precision = next((p for p, a in tflite.items() if (folder / a["path"]).resolve() == path.resolve()), "unknown")
        return Choice(path, precision, why, run_task, _validation(report, path))
    passed = [(p, folder / tflite[p]["path"]) for p in PRECISION_ORDER if tflite.get(p, {}).get("verdict") == "pass"]
    passed.sort(key=lambda c: c[1].stat().st_size if c[1].is_file() else 0)  # an unrolled GRU's int8 is no smaller
    # A file validate did not measure on this target, or measured inside every budget, before one that broke one.
    candidates = [(p, path, _validation(report, path)) for p, path in passed]
    candidates = [c for c in candidates if not (c[2] or {}).get("budgets_broken")] or candidates
    if candidates:
        precision, path, validation = candidates[0]
        why = "the smallest whose conversion check passed" + (
            ", though it broke a validate budget" if (validation or {}).get("budgets_broken") else ""
        )
        return Choice(path, precision, f"not validated: the {precision} file, {why}", run_task, validation)
    if not tflite:
        raise InputError(f"{src}: no TFLite artifact to bundle (convert --to tflite:...)")
    precision, closest = min(tflite.items(), key=lambda item: _closeness(item[1]))
    if not allow_over_budget:
        raise BudgetExceededError(f"{src}: no TFLite file is within tolerance; the closest is {closest['path']} "
                                  f"({_parity_line(closest)}); pass --allow-over-budget to ship it anyway")  # fmt: skip
    path = folder / closest["path"]
    return Choice(path, precision, f"out of tolerance, shipped under --allow-over-budget ({_parity_line(closest)})",
                  run_task, _validation(report, path))  # fmt: skip


def _recommended(found: tuple[Path, dict[str, Any]] | None, outside: set[str], target: str) -> tuple[Path, str] | None:
    """The fastest TFLite file validate measured on ``target`` inside every budget and convert's tolerance, and why."""
    if found is None:
        return None
    report = found[1]
    broken = {b["artifact"] for b in report.get("budgets_broken", [])}
    rows = [r for r in report["results"] if r["status"] == "measured" and r["format"] == "tflite"
            and r["target_requested"] == target and r["artifact"] not in broken
            and str(Path(r["path"]).resolve()) not in outside]  # fmt: skip
    if not rows:
        return None
    best = min(rows, key=lambda r: r["latency_ms"]["p50"])
    why = (f"validate: the fastest TFLite file inside every budget and convert's tolerance on the {target} "
           f"(p50 {best['latency_ms']['p50']} ms at {best['threads']} thread(s))")  # fmt: skip
    return Path(best["path"]), why


def _smallest_for_the_pi(found: tuple[Path, dict[str, Any]] | None, outside: set[str]) -> tuple[Path, str] | None:
    """A Pi bundle's file: measured natively on an aarch64 host, the fastest inside every budget; else the smallest
    TFLite file inside every budget on the cpu or pi cells, since x86 latency is not Pi latency (on x86 a fused
    int8 LSTM runs slower than fp32; on ARM64, XNNPACK's int8 kernels are the fast ones)."""
    if found is None:
        return None
    report = found[1]
    if (report.get("host") or {}).get("machine") in ("aarch64", "arm64"):
        return _recommended(found, outside, "cpu")
    broken = {b["artifact"] for b in report.get("budgets_broken", [])}
    rows = [r for r in report["results"] if r["status"] in ("measured", "checked") and r["format"] == "tflite"
            and r["target_requested"] in ("cpu", "pi") and r["artifact"] not in broken
            and str(Path(r["path"]).resolve()) not in outside]  # fmt: skip
    if not rows:
        return None
    best = min(rows, key=lambda r: (r["size_bytes"], r["target_requested"] != "pi"))
    checked = " (and checked on the Pi's software stack)" if any(
        r["path"] == best["path"] and r["target_requested"] == "pi" for r in rows) else ""  # fmt: skip
    where = (report.get("host") or {}).get("machine") or "this host"
    why = (f"validate: the smallest TFLite file inside every budget and convert's tolerance{checked}, "
           f"{best['size_bytes'] / 1e6:.3f} MB; "
           f"latency measured on {where} is not a Pi's, so it does not choose")  # fmt: skip
    return Path(best["path"]), why


def _labels(labels: str | Path | None, choice: Choice) -> tuple[list[str] | None, str | None]:
    """The bundle's labels (``--labels``, else the contract's, else the run's) and, for a classifier without
    any, the line saying why it has none."""
    if labels is not None:
        return read_labels(labels), None
    contract_labels = next((o.labels for o in (choice.contract.outputs if choice.contract else []) if o.labels), None)
    if contract_labels:
        return list(contract_labels), None
    if choice.task.get("labels"):
        return [str(label) for label in choice.task["labels"]], None
    if class_output(choice.contract) is not None:
        return None, ("no labels: the classifier's classes print as indices (pass --labels FILE, here or to "
                      "convert)")  # fmt: skip
    return None, None


def _preflight_summary(model: Any) -> dict[str, Any]:
    """What the Edge TPU will run of the Coral bundle's model: ops mapped, ops left on the CPU and why."""
    from edgekit.preflight.edgetpu import edgetpu_preflight

    found = edgetpu_preflight(model)
    keys = ("compiled", "ops_mapped", "ops_cpu", "cpu_ops", "first_cpu_op_index", "reasons", "blockers")
    return {k: found.get(k) for k in keys}


def bundle(
    source: str | Path,
    platform: str,
    *,
    labels: str | Path | None = None,
    out: str | Path | None = None,
    zip: bool = False,  # the CLI's --zip (shadows the builtin, unused here)
    mean: list[float] | None = None,
    std: list[float] | None = None,
    top_k: int = 5,
    allow_over_budget: bool = False,
    sign: str | Path | None = None,
    output_kind: str | None = None,
    streaming: bool = False,
) -> dict[str, Any]:
    """Build a ``platform`` bundle from ``source``; return its manifest (``edgekit.json``).

    ``mean`` / ``std`` override image normalization (``(pixel - mean) / std``) for models that
    expect it outside the graph; a run whose model takes standardized input (the autoencoders) brings
    its own per-channel ``mean`` / ``std`` into the preprocessing. The bundle is assembled in a
    temporary folder and moved into place, so a failure leaves nothing half-written. A bundle never
    carries a file that broke a validate budget: when every candidate for the platform did,
    :class:`~edgekit.errors.BudgetExceededError` (exit 4) names them, unless ``allow_over_budget`` — then
    ``edgekit.json`` says so under ``over_budget``. A Coral bundle carries the Edge TPU pre-flight of its
    model (``edgetpu_preflight``: ops mapped, ops left on the CPU and why). ``sign``: an Ed25519 private key
    (PEM; ``edgekit keygen``) that signs ``edgekit.json`` into ``edgekit.sig`` (:mod:`.signing`). The model's
    contract (its convert record's, else what its graph says; ``output_kind`` overrides an output's kind) gives
    the image normalization, the labels and how outputs are decoded (classes, detections, keypoints, masks).

    Example:
        >>> m = bundle("mobilenet_v2_1.0_224_quant.tflite", "rpi", labels="imagenet_labels.txt")  # doctest: +SKIP
        >>> m["inputs"][0]["preprocessing"]["feed"]  # doctest: +SKIP
        'uint8_pixels'
    """
    if platform not in PLATFORMS:
        raise InputError(f"--platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    signer = signer_key_id(sign) if sign is not None else None  # a bad key is refused before any work
    if streaming:
        source = streaming_source(source)
    choice = choose_artifact(source, platform, allow_over_budget)
    broken = _budgets_broken(choice, f"{source}: the {platform} bundle's only candidate", allow_over_budget)
    blob = read_model_bytes(choice.path)
    model = parse_tflite(blob, str(choice.path))
    if output_kind is not None:
        choice.contract = with_kinds(choice.contract or tflite_contract(model), output_kind)
    standardize = choice.task.get("input_standardization") or {}  # applied before the model (autoencoders)
    overrides = {k: v for k, v in (("mean", mean or standardize.get("mean")), ("std", std or standardize.get("std")))
                 if v is not None}  # fmt: skip
    inputs, outputs = io_entries(model, overrides, choice.contract)
    outputs = with_run_shapes(choice.path, outputs)
    if not overrides and (unknown := unknown_image_ranges(inputs, choice.contract)):
        raise InputError(f"{source}: nothing says what range image input {unknown[0]!r} takes (no scaling layer in "
                         "the model, no calibration data): convert with --input-range 0,1 (or -1,1, 0,255), or "
                         "give --mean/--std")  # fmt: skip
    label_list, labels_why = _labels(labels, choice)
    task, post = postprocessing(model, outputs, choice.contract, choice.task, label_list, top_k)
    assets = "assets/" if platform == "android" else ""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created_by": f"edgekit {__version__}",
        "platform": platform,
        "model": {
            "file": f"{assets}{choice.path.name}",
            "format": "tflite",
            "precision": choice.precision,
            "edgetpu_compiled": model.edgetpu_compiled,
            "source": str(choice.path),
            "chosen_because": choice.reason,
            **({"verdict": choice.verdict} if choice.verdict else {}),
        },
        "task": task,
        "inputs": inputs,
        "outputs": outputs,
        "postprocessing": {**post, **({"labels": f"{assets}labels.txt"} if "labels" in post else {})},
        "state": {
            "recurrent": bool(model.variable_tensors),
            "reset_before_each_call": bool(model.variable_tensors),
            "variable_tensors": model.variable_tensors,
        },
        "validation": choice.validation,
        "runtime": templates.runtime_notes(platform, model.edgetpu_compiled),
        **({"contract": choice.contract.to_dict()} if choice.contract else {}),
    }
    labels_checked(label_list, manifest)
    warnings = [f"{choice.path.name} broke a validate budget, shipped under --allow-over-budget: {b['message']}"
                for b in broken[:3]]  # fmt: skip
    if (choice.verdict or {}).get("verdict") == "out_of_tolerance":
        warnings.append(f"{choice.path.name} is out of convert's tolerance ({choice.verdict['parity']}), shipped "
                        "under --allow-over-budget")  # fmt: skip
    if labels_why:
        warnings.append(labels_why)
    if broken:
        manifest["over_budget"] = {"allowed_by": "--allow-over-budget", "budgets_broken": broken}
    if platform == "coral":
        manifest["edgetpu_preflight"] = _preflight_summary(model)
        if not model.edgetpu_compiled:
            warnings.append(f"{choice.path.name}: {choice.reason}")  # the reason says it is not compiled, once
    manifest["warnings"] = warnings
    if signer is not None:
        manifest["signature"] = {"scheme": "ed25519", "key_id": signer, "file": SIGNATURE_FILE}
        if "python_packages" in manifest["runtime"]:
            manifest["runtime"]["python_packages"].append(templates.pinned("cryptography"))  # run.py --key
    out_dir = Path(out) if out is not None else Path("bundles") / f"{choice.path.stem}_{platform}"
    manifest = _write_bundle(out_dir, manifest, blob, label_list, sign)
    if zip:
        from edgekit.stages.bundle.archive import write_zip

        write_zip(out_dir, out_dir.with_suffix(".zip"))
    return manifest


def _budgets_broken(choice: Choice, what: str, allowed: bool) -> list[dict[str, Any]]:
    """The validate budgets the chosen file broke; refused (exit 4) unless ``allowed``."""
    broken = (choice.validation or {}).get("budgets_broken", [])
    if broken and not allowed:
        messages = "; ".join(b["message"] for b in broken)
        raise BudgetExceededError(
            f"{what}, {choice.path.name}, broke its validate budgets: {messages} "
            "(fix the model, or pass --allow-over-budget to ship it anyway)"
        )
    return broken


def _write_bundle(
    out_dir: Path, manifest: dict[str, Any], blob: bytes, label_list: list[str] | None, sign: str | Path | None
) -> dict[str, Any]:
    """Assemble the bundle's files in a temporary folder beside ``out_dir``, hash them, write ``edgekit.json`` (and
    sign it) and move the folder into place; nothing is left half-written."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"--out {out_dir}: exists and is not empty (give a new folder)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out_dir.parent))
    try:
        files = {manifest["model"]["file"]: embed_metadata(blob, manifest)}
        if label_list:
            files[manifest["postprocessing"]["labels"]] = ("\n".join(label_list) + "\n").encode()
        files.update(templates.platform_files(manifest["platform"], manifest))
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        manifest["files"] = {name: sha256_file(staging / name) for name in sorted(files)}
        validate_spec(manifest)
        staged = RunDir(staging)
        record = dict(staged.write_record("bundle", manifest))
        if sign is not None:
            sign_manifest(staging, sign)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record

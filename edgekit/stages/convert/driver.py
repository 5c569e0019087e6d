"""``edgekit convert``: Keras → TFLite and ONNX artifacts, each checked against the source.

The driver is a pipeline of small steps, each in its own module, sharing one
:class:`~edgekit.stages.convert.settings.ConvertSettings`:

1. *inputs* (:mod:`~edgekit.stages.convert.inputs`): the source and calibration, checked before anything
   is written;
2. *plan* (:mod:`~edgekit.stages.convert.plan`): which artifacts to make or reuse, by content address;
3. *convert* (:mod:`~edgekit.stages.convert.child`): the converters run in a child process
   (:mod:`edgekit.converters.worker`) whose crash costs one artifact, never the run;
4. *check* (:mod:`~edgekit.stages.convert.check`): every artifact run on held-out inputs with the runtime
   lane and given a verdict; anomaly scorers get their own threshold (:mod:`~edgekit.stages.convert.thresholds`),
   and a quantized file out of tolerance its per-layer errors (:mod:`~edgekit.stages.convert.diagnosis`);
5. *target steps* (:mod:`~edgekit.stages.convert.steps`): outputs made from a checked artifact (Edge TPU).

The parent never imports TensorFlow.

Example:
    >>> record = convert("lstm.keras", "runs/lstm", to="tflite:int8", calib="windows.npz")  # doctest: +SKIP
    >>> [a["precision"] for a in record["artifacts"]]  # doctest: +SKIP
    ['int8']
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.common.io import sha256_file
from edgekit.contract import Contract, read_labels, with_labels
from edgekit.errors import EdgekitError
from edgekit.rundir import Record, RunDir
from edgekit.stages.convert.check import Checked, check_produced, out_of_tolerance
from edgekit.stages.convert.child import convert_in_child
from edgekit.stages.convert.diagnosis import diagnose_out_of_tolerance, worst_layers_line
from edgekit.stages.convert.edgetpu import compile_tflite
from edgekit.stages.convert.inputs import Calibration, ConvertInputs, is_path, materialize, resolve_inputs
from edgekit.stages.convert.plan import Plan, plan_conversion
from edgekit.stages.convert.settings import ConvertSettings
from edgekit.stages.convert.steps import TARGET_STEPS
from edgekit.stages.convert.stream_check import check_streams, stream_reference
from edgekit.stages.convert.thresholds import calibrate_artifact_thresholds

Progress = Callable[[str], None]


def convert(
    source: str | Path | Any,
    out: str | Path,
    *,
    settings: ConvertSettings | None = None,
    calib: Calibration = None,
    progress: Progress | None = None,
    **options: Any,
) -> Record:
    """Convert ``source`` into ``out``; return the convert record (also written to ``out/manifest.json``).

    ``source`` is a model file, a SavedModel or run directory, or a Keras model object (saved into the run
    directory first); a full-integer ``.tflite`` is compiled for the Edge TPU (``to="edgetpu"``).
    ``calib`` is a path, or a callable returning an array or a dict of arrays by input name (stored as
    ``.edgekit/calib.npz``). ``settings`` — or its fields as keywords (``to=``, ``batch=``, ...) — say
    how. Every artifact gets a verdict: a float artifact out of tolerance is a failure (in ``failed``,
    file removed); a quantized one is kept, marked ``out_of_tolerance`` and named in ``warnings`` (the
    CLI exits 3 under ``strict``).

    Example:
        >>> m = convert("model.keras", "runs/m", to="tflite:fp32")  # doctest: +SKIP
        >>> m["artifacts"][0]["parity"]["within_tolerance"]  # doctest: +SKIP
        True
    """
    settings = dataclasses.replace(settings, **options) if settings else ConvertSettings.from_options(**options)
    if is_path(source) and Path(source).suffix == ".tflite":
        return compile_tflite(source, out, to=settings.to, timeout=settings.timeout)
    inputs = resolve_inputs(source, calib)
    tokens = settings.tokens(has_calib=calib is not None)
    settings.check()
    created = not Path(out).exists()
    run = RunDir(out).prepare()
    try:
        inputs = materialize(inputs, run)
        plan = plan_conversion(run, inputs, settings, tokens)
        results, meta = convert_in_child(run, inputs, settings, plan, progress) if plan.todo else ({}, {})
        meta = meta if plan.todo else plan.previous.get("conversion", {})
        checked = check_produced(plan, results, meta, run, progress)
        _check_streams(checked, run, meta, progress)
        calibrate_artifact_thresholds(checked, inputs, run, (meta.get("streaming") or {}).get("window_reduce"))
        diagnose_out_of_tolerance(run, inputs, settings, checked)
        sections = {token: step(run, checked, settings) for token, step in TARGET_STEPS.items() if token in tokens}
        return run.write_record("convert", _record(inputs, settings, plan, meta, checked, sections))
    except (EdgekitError, KeyboardInterrupt):
        if created:  # a refused or interrupted conversion leaves no folder behind
            shutil.rmtree(run.root, ignore_errors=True)
        raise


def _check_streams(checked: Checked, run: RunDir, meta: dict[str, Any], progress: Progress | None) -> None:
    """Streaming artifacts stepped over the worker's held-out stream (:mod:`.stream_check`); a float one that
    drifts from Keras is a failure, its file removed."""
    if not meta.get("streaming") or checked.data is None:
        return
    reference = stream_reference(run.worker.reference)
    if reference is None:
        return
    if progress:
        progress(f"stepping {len(checked.artifacts)} file(s) through a {len(reference['x'])}-step stream")
    for line in check_streams(checked.artifacts, run.root, reference):
        token = line.split(":", 2)[0] + ":" + line.split(":", 2)[1]
        entry = next(a for a in checked.artifacts if a["precision_token"] == token)
        checked.artifacts.remove(entry)
        (run.root / entry["path"]).unlink(missing_ok=True)
        checked.failures[token] = {"token": token, "error": line, "cache_key": entry["cache_key"], "crash": False}


MIXED_SIZE_WARNING = 1.3  # a mixed file past this multiple of the full-int8 file's size is mostly float: said


def size_warnings(artifacts: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """What a quantized file did not buy: an int8 file larger than the fp32 file (and why), a mixed file whose
    float layers cost much of int8's size and speed (and what its budget promised for it).

    Example:
        >>> size_warnings([{"path": "m_fp32.tflite", "precision_token": "tflite:fp32", "size_bytes": 10},
        ...                {"path": "m_int8.tflite", "precision_token": "tflite:int8", "size_bytes": 70}], {})
        ['m_int8.tflite: 7.0x the size of m_fp32.tflite (int8 buys no size here); bundle prefers the smaller file']
    """
    by_token = {a["precision_token"]: a for a in artifacts}
    lines = []
    for fmt in ("tflite", "onnx"):
        fp32, int8 = by_token.get(f"{fmt}:fp32"), by_token.get(f"{fmt}:int8")
        if fp32 and int8 and int8["size_bytes"] > fp32["size_bytes"]:
            why = f" ({meta['quantized_route']})" if fmt == "tflite" and meta.get("quantized_route") else ""
            lines.append(f"{int8['path']}: {int8['size_bytes'] / fp32['size_bytes']:.1f}x the size of {fp32['path']}"
                         f"{why} (int8 buys no size here); bundle prefers the smaller file")  # fmt: skip
        mixed = by_token.get(f"{fmt}:mixed") or {}
        search = mixed.get("search") or {}
        if search.get("size_vs_full_int8", 0) > MIXED_SIZE_WARNING:
            bounds = "; ".join(b["says"] for b in (search.get("agreement_bounds") or {}).values())
            kept = mixed.get("float_layers") or search.get("float_layers") or []
            lines.append(f"{mixed['path']}: {len(kept)} layer(s) kept float for the budget "
                         f"{mixed.get('budget') or search.get('budget')} cost {search['size_vs_full_int8']:.1f}x the "
                         f"full-int8 size and {search.get('latency_vs_full_int8') or 0:.1f}x its latency"
                         + (f"; what the budget guarantees: {bounds}" if bounds else ""))  # fmt: skip
    return lines


def recorded_contract(meta: dict[str, Any], settings: ConvertSettings) -> dict[str, Any] | None:
    """The contract the worker read from the model, with ``--labels`` on its class output (checked for size).

    Example:
        >>> recorded_contract({}, ConvertSettings()) is None
        True
    """
    if "contract" not in meta:
        return None
    contract = Contract.from_dict(meta["contract"])
    if settings.labels is not None:
        contract = with_labels(contract, read_labels(settings.labels), settings.labels)
    return contract.to_dict()


def _record(
    inputs: ConvertInputs,
    settings: ConvertSettings,
    plan: Plan,
    meta: dict[str, Any],
    checked: Checked,
    sections: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The convert record's body: source, settings, tools, task, conversion, artifacts in ``--to`` order."""
    order = {t: i for i, t in enumerate(plan.tokens)}
    artifacts = sorted(checked.artifacts, key=lambda a: order[a["precision_token"]])
    warnings = [*meta.get("warnings", []), *(meta.get("contract") or {}).get("notes", [])]
    for art in artifacts:
        if art.get("verdict") == "out_of_tolerance" and "stream" in art["parity"]:
            warnings.append(f"{art['path']}: out of tolerance {art['parity']['stream']}")
        elif art.get("verdict") == "out_of_tolerance":
            worst = worst_layers_line(art)
            warnings.append(f"{art['path']}: {out_of_tolerance(art['parity'])}" + (f"; {worst}" if worst else ""))
    warnings += size_warnings(artifacts, meta)
    if plan.dropped:  # a second convert into this folder, from another source: its earlier files went
        warnings.append(f"removed {', '.join(plan.dropped)}: converted earlier into this folder from another source")
    artifacts += plan.kept  # earlier artifacts of the same source this call did not make again
    return {
        "source": {
            "path": str(inputs.model_path), "sha256": inputs.source_sha,
            "calibration": str(inputs.calib) if inputs.calib else None, "calibration_sha256": inputs.calib_sha,
            **({"custom_objects": str(Path(settings.custom_objects).resolve()),
                "custom_objects_sha256": sha256_file(settings.custom_objects)} if settings.custom_objects else {}),
        },
        "settings": {
            **settings.shaping(), "to": plan.tokens,
            "calib_samples_requested": settings.calib_samples, "check_samples_requested": settings.check_samples,
            "calib_samples": meta.get("calibration_samples", 0), "check_samples": meta.get("check_samples", 0),
            "strict": settings.strict,
        },
        "tools": plan.tools,
        "task": inputs.run_task,
        "contract": recorded_contract(meta, settings),
        "conversion": meta,
        "artifacts": artifacts,
        "failed": [checked.failures[t] for t in plan.tokens if t in checked.failures],
        "warnings": warnings,
        **sections,
    }  # fmt: skip

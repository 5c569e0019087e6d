"""The conversion child process: ``python -m edgekit.converters.worker JOB.json``.

It loads the source model once, computes reference outputs on the held-out
check sample, then writes each requested artifact atomically (``.part`` then
rename). Before each artifact it records which one it is working on, so that
when TensorFlow crashes the process the parent can name the artifact and
start a fresh worker for the rest. Results go to ``result.json`` beside the job.

Example:
    $ python -m edgekit.converters.worker run/.edgekit/job.json
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from edgekit.common.io import write_atomic, write_json
from edgekit.errors import ConversionError, EdgekitError, UnsupportedOpError
from edgekit.rundir import WorkerFiles

log = logging.getLogger("edgekit.converters.worker")


def _predict(model: Any, feeds: dict[str, np.ndarray], names: list[str], chunk: int = 32) -> list[np.ndarray]:
    """Keras outputs on ``feeds`` (inputs in Keras order), one array per output in Keras order."""
    n = len(next(iter(feeds.values())))
    outs: list[list[np.ndarray]] = []
    for i in range(0, n, chunk):
        batch = [feeds[name][i : i + chunk] for name in names]
        y = model(batch if len(batch) > 1 else batch[0], training=False)
        if isinstance(y, dict):
            y = [y[k] for k in model.output_names]
        outs.append([np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])])
    return [np.concatenate(parts) for parts in zip(*outs, strict=True)]


def _random_feeds(model: Any, specs: list[Any], n: int) -> dict[str, np.ndarray]:
    """Check inputs when no data was given: standard normal floats, integer ids below the smallest vocabulary."""
    rng = np.random.default_rng(0)
    vocab = [int(layer.input_dim) for layer in model._flatten_layers() if type(layer).__name__ == "Embedding"]
    feeds = {}
    for s in specs:
        shape = (n, *[d or 1 for d in s.shape[1:]])
        if np.issubdtype(np.dtype(s.dtype), np.integer):
            feeds[s.name] = rng.integers(0, min(vocab) if vocab else 2, size=shape).astype(s.dtype)
        else:
            feeds[s.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _calibration_warnings(model: Any, ranges: dict[str, dict[str, float]]) -> list[str]:
    """Calibration data that looks already scaled for an input the model rescales itself (e.g. 0..1 into 1/255)."""
    from edgekit.converters.source import first_rescaling

    warnings = []
    for name, scale in first_rescaling(model).items():
        span = ranges[name]
        if abs(scale) <= 1 / 50 and span["max"] <= 1.0 and span["min"] >= -1.0:
            warnings.append(
                f"calibration input {name!r} spans [{span['min']:g}, {span['max']:g}] but the model's first layer "
                f"rescales it by {scale:.4g}, so it expects raw values (e.g. 0..255 pixels): pass unscaled data, "
                "or the int8 ranges will not match real inputs"
            )
    return warnings


def _unrolled(model: Any, sample: list[np.ndarray], meta: dict[str, Any]) -> Any:
    """The GRU / SimpleRNN model unrolled over its time steps, for int8 and 16x8 TFLite.

    Calibrating their WHILE loop crashes the converter (SIGSEGV in the
    calibrator, in tf_keras and Keras 3 alike); unrolled, they convert to
    plain int8 ops. An open sequence length cannot be unrolled: refused.
    """
    from edgekit.converters.bridge import UNROLLABLE, to_tf_keras

    recurrent = [layer for layer in model._flatten_layers() if type(layer).__name__ in UNROLLABLE]
    steps = []
    for layer in recurrent:
        try:
            steps.append(layer.input.shape[1])
        except (AttributeError, ValueError):  # a layer inside Bidirectional was never called on its own
            steps.append(model.inputs[0].shape[1])
        if steps[-1] is None:
            raise ConversionError(
                f"layer {layer.name!r} ({type(layer).__name__}) has an open sequence length; its int8 TFLite "
                "conversion needs it unrolled: give the model a fixed-length input"
            )
    unrolled, diff = to_tf_keras(model, sample, unroll=True)
    meta["quantized_route"] = (
        f"{', '.join(sorted({type(layer).__name__ for layer in recurrent}))} unrolled over "
        f"{max(steps)} steps for int8/16x8 (the converter crashes calibrating their loop)"
    )
    meta["unrolled_max_abs_diff"] = diff
    return unrolled


def prepare(job: dict[str, Any], files: WorkerFiles) -> tuple[Any, dict[str, np.ndarray] | None, dict[str, Any]]:
    """Load the model, pick the route, load calibration data, save the reference outputs.

    Returns the model to convert (the tf_keras rebuild for recurrent models),
    the calibration sample, and the source's input specs and output names
    (``inputs`` / ``outputs``), which every artifact must carry.
    """
    from edgekit.common.calibration import count, load_calibration, split_sample, value_ranges
    from edgekit.converters.bridge import UNROLLABLE, to_tf_keras
    from edgekit.converters.source import (
        as_float32,
        detect_task,
        input_specs,
        is_recurrent,
        layer_classes,
        load_keras,
        output_names,
    )  # fmt: skip

    if any(art["token"].startswith("onnx:") for art in job["artifacts"]):
        from edgekit.converters.onnx import check_opset

        check_opset(job["opset"])
    model = as_float32(load_keras(job["source"], custom_objects=job.get("custom_objects"), unsafe=job["unsafe"]))
    specs = input_specs(model)
    names = [s.name for s in specs]
    task = detect_task(model, given=job.get("task"), run_task=job.get("run_task"))
    calib = check = None
    meta: dict[str, Any] = {
        "inputs": [s.to_dict() for s in specs], "outputs": output_names(model),
        "task": task["task"], "task_why": task["why"], "output_kinds": task["outputs"],
    }  # fmt: skip
    if job.get("calib"):
        data = load_calibration(job["calib"], specs)
        calib, check = split_sample(data, job["calib_samples"], job["check_samples"])
        meta["calibration_ranges"] = value_ranges(data)
        meta["warnings"] = _calibration_warnings(model, meta["calibration_ranges"])
    if check is None:
        check = _random_feeds(model, specs, job["check_samples"])
    reference = _predict(model, check, names)
    meta.update(
        route="keras3",
        calibration_samples=0 if calib is None else count(calib),
        check_samples=count(check),
        check_source="held-out calibration data" if job.get("calib") else "random inputs (no --calib)",
    )
    converted = model
    if is_recurrent(model):
        converted, diff = to_tf_keras(model, [check[name][:8] for name in names])
        meta.update(route="tf_keras bridge (fused LSTM)", bridge_max_abs_diff=diff)
        tokens = {a["token"] for a in job["artifacts"]} | set(job.get("diagnose", []))
        quantized = tokens & {"tflite:int8", "tflite:16x8"}
        if quantized and layer_classes(model) & UNROLLABLE:
            converted = {"float": converted, "quantized": _unrolled(model, [check[name][:8] for name in names], meta)}
    arrays = {f"x:{k}": v for k, v in check.items()}
    arrays.update({f"y:{k}": y for k, y in zip(meta["outputs"], reference, strict=True)})
    np.savez(files.reference, **arrays)
    write_json(files.meta, meta)
    return converted, calib, {"inputs": specs, "outputs": meta["outputs"]}


@dataclass
class Converted:
    """What every producer works from: the model (or float / quantized variants), calibration, I/O names."""

    model: Any
    calibration: dict[str, np.ndarray] | None
    io: dict[str, Any]
    job: dict[str, Any]
    onnx_fp32: bytes | None = None  # made once, quantized by onnx:int8

    def for_precision(self, precision: str) -> Any:
        if isinstance(self.model, dict):
            return self.model["quantized" if precision in ("int8", "16x8") else "float"]
        return self.model


def _tflite(src: Converted, precision: str) -> bytes:
    from edgekit.converters.tflite import to_tflite

    job = src.job
    return to_tflite(
        src.for_precision(precision), precision, calibration=src.calibration, batch=job["batch"],
        int8_io=job["int8_io"], per_channel=job["int8_granularity"] == "per-channel",
        allow_select_tf_ops=job["allow_select_tf_ops"], **src.io,
    )  # fmt: skip


def _onnx(src: Converted, precision: str) -> bytes:
    from edgekit.converters.onnx import quantize_onnx, to_onnx

    job = src.job
    if precision == "fp32" or src.onnx_fp32 is None:
        src.onnx_fp32 = to_onnx(src.for_precision(precision), opset=job["opset"], batch=job["batch"], **src.io)
    if precision == "fp32":
        return src.onnx_fp32
    if src.calibration is None:
        raise ConversionError("onnx:int8 needs calibration data (--calib)")
    return quantize_onnx(
        src.onnx_fp32, calibration=src.calibration, per_channel=job["int8_granularity"] == "per-channel"
    )


# One producer per format: (what to convert, precision) → the artifact's bytes. A new format is a new entry.
PRODUCERS: dict[str, Callable[[Converted, str], bytes]] = {"tflite": _tflite, "onnx": _onnx}


def _diagnose(src: Converted, tokens: list[str], result: dict[str, Any]) -> None:
    """Per-layer quantization error of each ``tflite:int8`` / ``tflite:16x8`` token, into ``result["diagnoses"]``."""
    from edgekit.converters.diagnose import layer_errors

    diagnoses = result.setdefault("diagnoses", {})
    for token in tokens:
        precision = token.split(":")[1]
        model = src.for_precision(precision)
        try:
            diagnoses[token] = layer_errors(
                model, src.calibration, precision=precision, batch=src.job["batch"],
                per_channel=src.job["int8_granularity"] == "per-channel",
                layer_names=[layer.name for layer in model._flatten_layers()], **src.io,
            )  # fmt: skip
        except Exception as exc:  # the debugger is TFLite's; its failure costs the diagnosis, not the artifact
            diagnoses[token] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"}


def run(job_path: Path) -> int:
    """Produce every artifact of the job not yet in ``result.json``; 0 when done, 3 on a fatal error."""
    files = WorkerFiles(job_path.parent)
    job = json.loads(job_path.read_text())
    result: dict[str, Any] = json.loads(files.result.read_text()) if files.result.is_file() else {"artifacts": {}}
    try:
        src = Converted(*prepare(job, files), job)
    except EdgekitError as exc:
        result["fatal"] = {"message": str(exc), "exit_code": exc.exit_code}
        write_json(files.result, result)
        return 3
    if job.get("diagnose"):
        _diagnose(src, job["diagnose"], result)
        write_json(files.result, result)
    for art in job["artifacts"]:
        token = art["token"]
        if token in result["artifacts"]:
            continue
        files.current.write_text(token)
        if os.environ.get("EDGEKIT_CRASH_ON") == token:  # lets tests crash this process for real
            os.kill(os.getpid(), 11)
        fmt, precision = token.split(":")
        start = time.perf_counter()
        try:
            write_atomic(art["path"], PRODUCERS[fmt](src, precision))
            result["artifacts"][token] = {"ok": True, "seconds": round(time.perf_counter() - start, 2)}
        except EdgekitError as exc:
            unsupported = isinstance(exc, UnsupportedOpError)
            result["artifacts"][token] = {"ok": False, "error": str(exc), "unsupported_op": unsupported}
        write_json(files.result, result)
    files.current.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run(Path(sys.argv[1])))

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
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from edgekit.errors import ConversionError, EdgekitError, UnsupportedOpError
from edgekit.manifest import write_atomic, write_json

log = logging.getLogger("edgekit.converters.worker")


def _predict(model: Any, x: np.ndarray, chunk: int = 32) -> list[np.ndarray]:
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(x), chunk):
        y = model(x[i : i + chunk], training=False)
        outs.append([np.asarray(t, np.float32) for t in (y if isinstance(y, (list, tuple)) else [y])])
    return [np.concatenate(parts) for parts in zip(*outs, strict=True)]


def prepare(job: dict[str, Any], work: Path) -> tuple[Any, np.ndarray | None]:
    """Load the model, pick the route, load calibration data, save the reference outputs.

    Returns the model to convert (the tf_keras rebuild for recurrent models) and the calibration sample.
    """
    from edgekit.converters.bridge import to_tf_keras
    from edgekit.converters.calibration import load_calibration, split_sample
    from edgekit.converters.source import as_float32, classify_task, is_recurrent, load_keras

    model = as_float32(load_keras(job["source"], custom_objects=job.get("custom_objects"), unsafe=job["unsafe"]))
    if len(model.inputs) != 1:
        raise ConversionError(
            f"{job['source']}: only single-input models are supported (this one has {len(model.inputs)})"
        )
    shape = tuple(model.inputs[0].shape)
    calib = check = None
    if job.get("calib"):
        data = load_calibration(job["calib"], shape)
        calib, check = split_sample(data, job["calib_samples"], job["check_samples"])
    if check is None:
        rng = np.random.default_rng(0)
        check = rng.standard_normal((job["check_samples"], *[d or 1 for d in shape[1:]])).astype(np.float32)
    reference = _predict(model, check)
    meta: dict[str, Any] = {
        "task": classify_task(model),
        "route": "keras3",
        "calibration_samples": 0 if calib is None else len(calib),
        "check_samples": len(check),
        "check_source": "held-out calibration data" if job.get("calib") else "random normal inputs (no --calib)",
    }
    converted = model
    if is_recurrent(model):
        converted, diff = to_tf_keras(model, [check[:8]])
        meta.update(route="tf_keras bridge (fused LSTM)", bridge_max_abs_diff=diff)
    np.savez(work / "reference.npz", x=check, **{f"y{i}": y for i, y in enumerate(reference)})
    write_json(work / "meta.json", meta)
    return converted, calib


def run(job_path: Path) -> int:
    from edgekit.converters.onnx import quantize_onnx, to_onnx
    from edgekit.converters.tflite import to_tflite

    job = json.loads(job_path.read_text())
    work = job_path.parent
    result_path = work / "result.json"
    result: dict[str, Any] = json.loads(result_path.read_text()) if result_path.is_file() else {"artifacts": {}}
    try:
        converted, calib = prepare(job, work)
    except EdgekitError as exc:
        result["fatal"] = {"message": str(exc), "exit_code": exc.exit_code}
        write_json(result_path, result)
        return 3
    onnx_fp32: bytes | None = None
    for art in job["artifacts"]:
        token = art["token"]
        if token in result["artifacts"]:
            continue
        (work / "current").write_text(token)
        if os.environ.get("EDGEKIT_CRASH_ON") == token:  # lets tests crash this process for real
            os.kill(os.getpid(), 11)
        fmt, precision = token.split(":")
        start = time.perf_counter()
        try:
            if fmt == "tflite":
                blob = to_tflite(
                    converted, precision, calibration=calib, batch=job["batch"],
                    int8_io=job["int8_io"], per_channel=job["int8_granularity"] == "per-channel",
                    allow_select_tf_ops=job["allow_select_tf_ops"],
                )  # fmt: skip
            elif precision == "fp32":
                blob = onnx_fp32 = to_onnx(converted, opset=job["opset"], batch=job["batch"])
            else:
                if calib is None:
                    raise ConversionError("onnx:int8 needs calibration data (--calib)")
                onnx_fp32 = onnx_fp32 or to_onnx(converted, opset=job["opset"], batch=job["batch"])
                blob = quantize_onnx(onnx_fp32, calibration=calib, per_channel=job["int8_granularity"] == "per-channel")
            write_atomic(art["path"], blob)
            result["artifacts"][token] = {"ok": True, "seconds": round(time.perf_counter() - start, 2)}
        except EdgekitError as exc:
            unsupported = isinstance(exc, UnsupportedOpError)
            result["artifacts"][token] = {"ok": False, "error": str(exc), "unsupported_op": unsupported}
        write_json(result_path, result)
    (work / "current").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run(Path(sys.argv[1])))

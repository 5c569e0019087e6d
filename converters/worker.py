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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from edgekit.common.io import write_atomic, write_json
from edgekit.common.readers import read_arrays
from edgekit.errors import ConversionError, EdgekitError, InputError, UnsupportedOpError
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


@dataclass
class Streamed:
    """A sequence model as its one-step model, with stepped samples and a long stream's reference outputs."""

    step: Any
    spec: Any
    data: dict[str, np.ndarray]  # each step of the windows with the state it had: calibration and check samples
    reference: dict[str, np.ndarray]  # x and y of one long held-out stream, stepped by the Keras step model
    figures: dict[str, Any]


STREAM_STEPS = 500  # held-out steps in the stream every streaming artifact is checked over (it is stepped twice)


def _streamed(model: Any, job: dict[str, Any]) -> Streamed:
    """``--streaming`` (or a ``stateful=True`` model): the one-step model, checked against the original on its
    windows; the calibration windows stepped through it; the last windows joined into one long stream.

    A run's anomaly scorer says how it streams (``task.stream``): its per-step part up to the squared error,
    the window reduction of its score recorded for the runtime (``window_reduce``)."""
    from edgekit.common.calibration import load_calibration
    from edgekit.converters.source import input_specs, output_names, with_outputs
    from edgekit.converters.streaming import check_against_windows, stepped_feeds, stream_reference, to_streaming

    windowed = model
    how = (job.get("run_task") or {}).get("stream") if not job.get("outputs") else None
    if how:
        model = with_outputs(model, how["outputs"])
    step, spec = to_streaming(model)
    (window_spec,) = input_specs(model)
    if job.get("calib"):
        windows = load_calibration(job["calib"], [window_spec])[window_spec.name]
    else:
        shape = [d or 1 for d in window_spec.shape[1:]]
        windows = np.random.default_rng(0).standard_normal((64, *shape)).astype(np.float32)
    steps = windows.shape[1]
    diff = check_against_windows(model, step, spec, windows[:64])
    held = windows[-max(1, -(-STREAM_STEPS // steps)) :]
    stream = np.concatenate([held.reshape(-1, windows.shape[-1])] * 2)  # the same steps again, state carried
    window_output = {"name": output_names(windowed)[0], "shape": list(windowed.outputs[0].shape)}
    figures = {**spec.to_dict(), "step_vs_window_max_abs_diff": diff, "steps_per_window": steps,
               "window_input": window_spec.to_dict(), "window_output": window_output,
               "stream_steps": len(stream), "stream_source": "the last calibration windows, joined, stepped twice"
               if job.get("calib") else "random windows (no --calib)"}  # fmt: skip
    if how:
        figures["window_reduce"] = how["window_reduce"]
    return Streamed(step, spec, stepped_feeds(step, spec, windows), stream_reference(step, spec, stream), figures)


def _folder(job: dict[str, Any]) -> str | None:
    calib = job.get("calib")
    return calib if calib and Path(calib).is_dir() else None


def _calibration(job: dict[str, Any], specs: list[Any], evidence: Any) -> dict[str, np.ndarray]:
    """The calibration data; an image folder's 0..255 pixels mapped onto the range each image input takes."""
    from edgekit.common.calibration import load_calibration
    from edgekit.contract import PIXELS, pixels_to_range

    data = load_calibration(job["calib"], specs)
    for spec in specs:
        target = evidence.folder_range(spec, _folder(job))
        if target is not None and tuple(target) != PIXELS:
            data[spec.name] = pixels_to_range(data[spec.name], target)
    return data


def _unrolled(model: Any, sample: list[np.ndarray], meta: dict[str, Any]) -> Any:
    """The GRU / SimpleRNN model unrolled over its time steps, for int8 and 16x8 TFLite.

    Calibrating their WHILE loop crashes the converter (SIGSEGV in the
    calibrator, in tf_keras and Keras 3 alike); unrolled, they convert to
    plain int8 ops. An open sequence length cannot be unrolled: refused.
    """
    from edgekit.converters.bridge import to_tf_keras, unrolled_classes

    classes = unrolled_classes(model)
    recurrent = [layer for layer in model._flatten_layers() if type(layer).__name__ in classes]
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
    from edgekit.common.calibration import count, split_sample, value_ranges, with_excursions
    from edgekit.converters.bridge import padding_value, to_tf_keras, unrolled_classes
    from edgekit.converters.contract import ContractEvidence, parity_kinds
    from edgekit.converters.source import (
        as_float32,
        detect_task,
        input_specs,
        is_recurrent,
        load_keras,
        output_names,
        refuse_random_inference,
        refuse_string_inputs,
        with_input_shapes,
        with_outputs,
    )  # fmt: skip
    from edgekit.converters.streaming import initial_state_layers, is_stateful, with_state_kinds

    if any(art["token"].startswith("onnx:") for art in job["artifacts"]):
        from edgekit.converters.onnx import check_opset

        check_opset(job["opset"])
    fixes: list[str] = []
    model = load_keras(job["source"], custom_objects=job.get("custom_objects"), unsafe=job["unsafe"], fixes=fixes)
    model = as_float32(with_outputs(model, job.get("outputs")))
    streamed = _streamed(model, job) if job.get("streaming") or is_stateful(model) else None
    model = streamed.step if streamed else model
    specs = with_input_shapes(input_specs(model), job.get("input_shape"), job["batch"])
    refuse_string_inputs(model, specs)
    names = [s.name for s in specs]
    # a streaming scorer's y is each step's error (its score is the window reduction the runtime applies): the run's
    # task does not name its outputs
    outputs_task = None if streamed and "window_reduce" in streamed.figures else job.get("run_task")
    evidence = ContractEvidence.read(model, specs, {**job, "run_task": outputs_task})
    meta: dict[str, Any] = {"inputs": [s.to_dict() for s in specs], "outputs": output_names(model)}
    if fixes:  # a Keras 2 file: what was changed to load it
        meta["keras2_fixes"] = fixes
    if streamed:
        meta["streaming"] = streamed.figures
    calib = check = None
    if job.get("calib"):
        data = streamed.data if streamed else _calibration(job, specs, evidence)
        calib, check = split_sample(data, job["calib_samples"], job["check_samples"])
        meta["calibration_ranges"] = value_ranges(data)
        if excursion := (job.get("run_task") or {}).get("calibration_excursion"):  # anomaly detectors
            only = {streamed.spec.step_input} if streamed else None  # a state keeps the range it really takes
            calib, meta["calibration_excursions"] = with_excursions(calib, excursion["value"], excursion["fraction"],
                                                                    only=only)  # fmt: skip
    contract, meta["warnings"] = evidence.contract(meta.get("calibration_ranges"), _folder(job))
    if streamed:
        contract = with_state_kinds(contract, streamed.spec, streamed.figures.get("window_reduce"))
    task = detect_task(model, given=job.get("task"), run_task=outputs_task, kinds=parity_kinds(contract, model))
    meta.update(contract=contract.to_dict(), task=task["task"], task_why=task["why"], output_kinds=task["outputs"])
    if check is None:
        check = streamed.data if streamed else _random_feeds(model, specs, job["check_samples"])
    refuse_random_inference(model, [check[name][:8] for name in names])
    reference = _predict(model, check, names)
    meta.update(
        route="keras3 one-step model (streaming: state as inputs and outputs)" if streamed else "keras3",
        calibration_samples=0 if calib is None else count(calib),
        check_samples=count(check),
        check_source="held-out calibration data" if job.get("calib") else "random inputs (no --calib)",
    )
    converted = model
    job["initial_state_layers"] = initial_state_layers(model)  # read by the int8 TFLite producer
    if is_recurrent(model):
        converted, diff = to_tf_keras(model, [check[name][:8] for name in names])
        masked = padding_value(model) is not None  # the fused kernel has no mask: a masked LSTM stays a loop
        route = "tf_keras bridge (masked: recurrent loop)" if masked else "tf_keras bridge (fused LSTM)"
        meta.update(route=route, bridge_max_abs_diff=diff)
        tokens = {a["token"] for a in job["artifacts"]} | set(job.get("diagnose", []))
        quantized = tokens & {"tflite:int8", "tflite:16x8", "tflite:mixed"}
        if quantized and unrolled_classes(model):
            converted = {"float": converted, "quantized": _unrolled(model, [check[name][:8] for name in names], meta)}
    arrays = {f"x:{k}": v for k, v in check.items()}
    arrays.update({f"y:{k}": y for k, y in zip(meta["outputs"], reference, strict=True)})
    arrays.update({f"stream:{k}": v for k, v in (streamed.reference if streamed else {}).items()})
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

    files: WorkerFiles | None = None  # the job's hand-off files (reference outputs, meta)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)  # what a producer reports beside its bytes

    def for_precision(self, precision: str) -> Any:
        if isinstance(self.model, dict):
            return self.model["quantized" if precision in ("int8", "16x8", "mixed") else "float"]
        return self.model


def _labelled_npz(path: Path, inputs: list[str], outputs: list[str]) -> tuple[dict, dict | None]:
    """Inputs and labels of an ``.npz``: ``x`` / ``y`` for one input / output, else ``x:<name>`` / ``y:<name>``."""
    data = read_arrays(path)
    feeds = {n: data["x"] if len(inputs) == 1 and "x" in data else data[f"x:{n}"] for n in inputs}
    labels = {n: data["y"] if len(outputs) == 1 and "y" in data else data[f"y:{n}"]
              for n in outputs if ("y" in data and len(outputs) == 1) or f"y:{n}" in data}  # fmt: skip
    return feeds, labels or None


def _metric_kinds(outputs: list[str], run_task: dict[str, Any], detected: dict[str, Any]) -> dict[str, str]:
    """How each output is scored (:data:`edgekit.common.metrics.KINDS`): the run's task, else what was detected."""
    from edgekit.common.metrics import KINDS

    if run_task.get("type") in ("anomaly_scorer", "forecaster", "classifier") and len(outputs) == 1:
        return {outputs[0]: run_task["type"]}
    kinds = {name: (detected.get(name) or {}).get("kind", "regressor") for name in outputs}
    return {name: kind if kind in KINDS else "regressor" for name, kind in kinds.items()}


def _evaluation(src: Converted) -> Any:
    """What ``tflite:mixed`` candidates are measured on (:class:`edgekit.converters.mixed.Evaluation`)."""
    from edgekit.common.budgets import Budgets
    from edgekit.common.thresholds import calibrate_threshold
    from edgekit.converters.mixed import Evaluation

    spec, job = src.job["mixed"], src.job
    names, outputs = [s.name for s in src.io["inputs"]], src.io["outputs"]
    files = src.files
    assert files is not None
    meta = json.loads(files.meta.read_text())
    streaming = "streaming" in meta  # each step with the state it had: the windowed data's labels do not apply
    if spec.get("data") and not streaming:
        try:
            feeds, labels = _labelled_npz(Path(spec["data"]), names, outputs)
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"--data {spec['data']}: {exc}") from None
        source = spec["data"]
    else:
        with np.load(files.reference) as ref:
            feeds = {n: ref[f"x:{n}"] for n in names}
        labels, source = None, "held-out calibration data (no --data: agreement only)"
    model = src.for_precision("fp32")
    reference = dict(zip(outputs, _predict(model, feeds, names), strict=True))
    run_task = {} if streaming else job.get("run_task") or {}
    ev = Evaluation(feeds, labels, reference, _metric_kinds(outputs, run_task, meta["output_kinds"]),
                    Budgets(**spec["budget"]), source)  # fmt: skip
    if spec.get("normal") and spec.get("threshold_rule") and not streaming:
        ev.normal = {names[0]: np.load(spec["normal"], allow_pickle=False)}
        ev.rule = spec["threshold_rule"]
        scores = _predict(model, ev.normal, names)[0]
        ev.reference_threshold = calibrate_threshold(scores.reshape(len(scores), -1)[:, 0], ev.rule["method"],
                                                     ev.rule["value"])  # fmt: skip
    return ev


def _mixed(src: Converted, fmt: str) -> bytes:
    """``tflite:mixed`` / ``onnx:mixed``: the search of :mod:`edgekit.converters.mixed`; its report into notes."""
    from edgekit.converters.mixed import OnnxQuantizer, TFLiteQuantizer, search

    if src.calibration is None:
        raise ConversionError(f"{fmt}:mixed needs calibration data (--calib)")
    start = time.perf_counter()
    model = src.for_precision("mixed")
    per_channel = src.job["int8_granularity"] == "per-channel"
    if fmt == "tflite":
        quantizer: Any = TFLiteQuantizer(
            model, src.calibration, src.io, batch=src.job["batch"], per_channel=per_channel
        )
    else:
        names = [layer.name for layer in model._flatten_layers()]
        quantizer = OnnxQuantizer(_onnx_fp32(src, "mixed"), src.calibration, names, per_channel=per_channel)
    blob, report = search(quantizer, _evaluation(src))
    report["search_seconds"] = round(time.perf_counter() - start, 2)  # calibration and layer errors included
    src.notes[f"{fmt}:mixed"] = report
    return blob


def _tflite(src: Converted, precision: str) -> bytes:
    from edgekit.converters.tflite import to_tflite

    job = src.job
    if precision in ("int8", "16x8", "mixed") and job.get("initial_state_layers"):
        raise ConversionError(
            f"tflite:{precision}: layer {job['initial_state_layers'][0]!r} takes its state as inputs, and TFLite's "
            "calibrator crashes (SIGSEGV) on that fused LSTM; convert the sequence model with --streaming instead "
            "(one-step cells, the state as inputs and outputs, int8 checked over a stream)"
        )
    if precision == "mixed":
        return _mixed(src, "tflite")
    return to_tflite(
        src.for_precision(precision), precision, calibration=src.calibration, batch=job["batch"],
        int8_io=job["int8_io"], per_channel=job["int8_granularity"] == "per-channel",
        allow_select_tf_ops=job["allow_select_tf_ops"], **src.io,
    )  # fmt: skip


def _onnx_fp32(src: Converted, precision: str) -> bytes:
    """The fp32 ONNX graph, made once; a failure names the token that needed it (onnx:int8 quantizes it)."""
    from edgekit.converters.onnx import to_onnx

    if src.onnx_fp32 is None:
        try:
            src.onnx_fp32 = to_onnx(src.for_precision("fp32"), opset=src.job["opset"], batch=src.job["batch"],
                                    **src.io)  # fmt: skip
        except ConversionError as exc:
            base = "" if precision == "fp32" else "its fp32 graph: "
            raise type(exc)(f"onnx:{precision}: {base}{exc}") from None
    return src.onnx_fp32


def _onnx(src: Converted, precision: str) -> bytes:
    from edgekit.converters.onnx import quantize_onnx

    if precision == "mixed":
        return _mixed(src, "onnx")
    fp32 = _onnx_fp32(src, precision)
    if precision == "fp32":
        return fp32
    if src.calibration is None:
        raise ConversionError("onnx:int8 needs calibration data (--calib)")
    return quantize_onnx(fp32, calibration=src.calibration, per_channel=src.job["int8_granularity"] == "per-channel")


# One producer per format: (what to convert, precision) → the artifact's bytes. A new format is a new entry.
PRODUCERS: dict[str, Callable[[Converted, str], bytes]] = {"tflite": _tflite, "onnx": _onnx}


def _diagnose(src: Converted, tokens: list[str], result: dict[str, Any]) -> None:
    """Per-layer quantization error of each ``tflite:int8`` / ``tflite:16x8`` (TFLite's debugger) and
    ``onnx:int8`` (ONNX Runtime's ``qdq_loss_debug``) token, into ``result["diagnoses"]``."""
    from edgekit.converters.diagnose import debugged, layer_errors
    from edgekit.converters.onnx import onnx_layer_errors, preprocess_onnx, quantize_onnx

    diagnoses = result.setdefault("diagnoses", {})
    per_channel = src.job["int8_granularity"] == "per-channel"
    for token in tokens:
        fmt, precision = token.split(":")
        model = src.for_precision(precision)
        names = [layer.name for layer in model._flatten_layers()]
        try:
            if fmt == "onnx":
                fp32 = _onnx_fp32(src, precision)
                prep = preprocess_onnx(fp32)
                int8 = quantize_onnx(fp32, calibration=src.calibration, per_channel=per_channel, preprocessed=prep)
                diagnoses[token] = onnx_layer_errors(prep, int8, src.calibration, names)
                continue
            debugger = debugged(
                model, src.calibration, precision=precision, batch=src.job["batch"], per_channel=per_channel,
                **src.io,
            )  # fmt: skip
            diagnoses[token] = layer_errors(debugger, names)
        except Exception as exc:  # the debuggers are the back-ends'; a failure costs the diagnosis, not the artifact
            diagnoses[token] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"}


def run(job_path: Path) -> int:
    """Produce every artifact of the job not yet in ``result.json``; 0 when done, 3 on a fatal error."""
    files = WorkerFiles(job_path.parent)
    job = json.loads(job_path.read_text())
    result: dict[str, Any] = json.loads(files.result.read_text()) if files.result.is_file() else {"artifacts": {}}
    try:
        src = Converted(*prepare(job, files), job, files=files)
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
            if token in src.notes:
                result["artifacts"][token]["search"] = src.notes.pop(token)
        except EdgekitError as exc:
            unsupported = isinstance(exc, UnsupportedOpError)
            result["artifacts"][token] = {"ok": False, "error": str(exc), "unsupported_op": unsupported}
        write_json(files.result, result)
    files.current.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run(Path(sys.argv[1])))

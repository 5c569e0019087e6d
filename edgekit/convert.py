"""``edgekit convert``: Keras → TFLite and ONNX artifacts, each checked against the source.

The parent never imports TensorFlow: it plans the artifacts, reuses those whose
content-addressed key is unchanged, runs the converters in a child process
(:mod:`edgekit.converters.worker`), survives a crash of that child (naming the
artifact and carrying on with the rest), checks parity with the runtime lane,
and writes the manifest.

Example:
    >>> manifest = convert("lstm.keras", "runs/lstm", to="tflite:int8", calib="windows.npz")  # doctest: +SKIP
    >>> [a["precision"] for a in manifest["artifacts"]]  # doctest: +SKIP
    ['fp32', 'int8']
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.edgetpu import EDGETPU, check_on_edgetpu, compile_for_edgetpu
from edgekit.errors import ConversionError, EdgekitError, InputError
from edgekit.manifest import (
    now,
    prepare_run_dir,
    read_manifest,
    sha256_file,
    sha256_tree,
    tool_versions,
    write_json,
    write_manifest,
)
from edgekit.parity import FLOAT_TOLERANCE, TASKS, compare
from edgekit.runtime import targets

log = logging.getLogger(__name__)

TOKENS = (
    "tflite:fp32", "tflite:fp16", "tflite:dynamic", "tflite:int8", "tflite:16x8", "onnx:fp32", "onnx:int8", EDGETPU,
)  # fmt: skip
DEFAULT_WITH_CALIB = ("tflite:fp32", "tflite:fp16", "tflite:dynamic", "tflite:int8", "onnx:fp32", "onnx:int8")
DEFAULT_WITHOUT_CALIB = ("tflite:fp32", "tflite:fp16", "tflite:dynamic", "onnx:fp32")
NEEDS_CALIB = {"tflite:int8", "tflite:16x8", "onnx:int8", EDGETPU}
Progress = Callable[[str], None]


def parse_tokens(to: str | None, has_calib: bool) -> list[str]:
    """Validate ``--to``; default to every output the data allows.

    Example:
        >>> parse_tokens("tflite:fp32, onnx:fp32", has_calib=False)
        ['tflite:fp32', 'onnx:fp32']
    """
    if not to:
        return list(DEFAULT_WITH_CALIB if has_calib else DEFAULT_WITHOUT_CALIB)
    tokens = [t.strip() for t in to.split(",") if t.strip()]
    unknown = [t for t in tokens if t not in TOKENS]
    if unknown or not tokens:
        raise InputError(f"--to: unknown output {', '.join(unknown) or '(none)'} (choose from {', '.join(TOKENS)})")
    if not has_calib and EDGETPU in tokens:
        raise InputError(
            "edgetpu needs a fully integer (int8) model, calibrated on sample inputs: "
            "edgekit convert MODEL --to edgetpu --calib DATA (image folder, .npy/.npz or .csv)"
        )
    if not has_calib and (needs := [t for t in tokens if t in NEEDS_CALIB]):
        raise InputError(f"{', '.join(needs)} need calibration data: pass --calib (image folder, .npy/.npz or .csv)")
    if EDGETPU in tokens and "tflite:int8" not in tokens:  # the compiler's input
        tokens.insert(tokens.index(EDGETPU), "tflite:int8")
    return list(dict.fromkeys(tokens))


def resolve_source(source: str | Path) -> Path:
    """The model behind ``source``: a ``.keras``/``.h5`` file, a SavedModel directory, or a run directory's model.

    Example:
        >>> resolve_source("missing.keras")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.keras: no such file or directory
    """
    p = Path(source)
    if not p.exists():
        raise InputError(f"{source}: no such file or directory")
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return p
        manifest = read_manifest(p) or {}
        for art in manifest.get("artifacts", []):
            if art.get("format") == "keras":
                return p / art["path"]
        if (p / "model.keras").is_file():
            return p / "model.keras"
        raise InputError(
            f"{source}: not a SavedModel nor a run directory with a Keras model (no saved_model.pb, "
            "no manifest entry, no model.keras)"
        )
    if p.suffix not in (".keras", ".h5"):
        raise InputError(f"{source}: not a Keras model (expected .keras, .h5, a SavedModel or a run directory)")
    if p.stat().st_size == 0:
        raise InputError(f"{source}: file is empty")
    return p


def _save_model_object(model: Any, work: Path) -> Path:
    """Save a Keras model object given through the API as ``.edgekit/source/<name>.keras``."""
    path = work / "source" / f"{model.name}.keras"
    path.parent.mkdir(exist_ok=True)
    try:
        model.save(path)
    except Exception as exc:
        raise InputError(f"model {model.name!r} cannot be saved as .keras: {type(exc).__name__}: {exc}") from None
    return path


def _model_object_sha(model: Any) -> str:
    """Content address of a model object: its config and weights (a saved .keras carries a timestamp)."""
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def _materialize_calibration(make: Callable[[], Any], work: Path) -> Path:
    """Call a calibration callable once and store what it returns (an array, or arrays by input name)."""
    try:
        data = make()
        arrays = {k: np.asarray(v) for k, v in data.items()} if isinstance(data, dict) else {"x": np.asarray(data)}
    except Exception as exc:
        raise InputError(f"the calibration callable failed: {type(exc).__name__}: {exc}") from None
    path = work / "calib.npz"
    np.savez(path, **arrays)
    return path


def _converter_code_sha() -> str:
    """sha256 over the converter sources, so a changed converter never reuses an old artifact."""
    import edgekit.converters

    return sha256_tree(Path(edgekit.converters.__file__).parent)


def _cache_key(inputs: dict[str, Any], token: str) -> str:
    """Content address of one artifact: everything that shapes it (``inputs``) plus its token."""
    blob = json.dumps({**inputs, "token": token}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _run_worker(job_path: Path, timeout: float) -> tuple[int, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.converters.worker", str(job_path)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip
    return proc.returncode, proc.stderr[-4000:]


def convert(
    source: str | Path | Any,
    out: str | Path,
    *,
    to: str | None = None,
    calib: str | Path | Callable[[], Any] | None = None,
    calib_samples: int = 200,
    check_samples: int = 64,
    batch: int = 1,
    opset: int = 17,
    int8_io: str = "int8",
    int8_granularity: str = "per-channel",
    custom_objects: str | Path | None = None,
    unsafe: bool = False,
    allow_select_tf_ops: bool = False,
    task: str | None = None,
    strict: bool = False,
    timeout: float = 1800,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Convert ``source`` into ``out``; return the manifest (also written to ``out/manifest.json``).

    ``source`` is a model file, a SavedModel or run directory, or a Keras model
    object (saved into the run directory first). ``calib`` is a path or a
    callable returning an array, or a dict of arrays by input name
    (materialized as ``.edgekit/calib.npz``). ``task`` overrides the detected
    task (see :data:`edgekit.parity.TASKS`); it decides how each
    output is compared. Every artifact gets a verdict: a float artifact out of
    tolerance is a failure (in ``failed``, file removed); a quantized one is
    kept, marked ``out_of_tolerance`` and named in ``warnings`` (the CLI exits
    3 under ``--strict``).
    ``int8_granularity`` is ``per-channel`` (weights scaled per output
    channel: the accurate default) or ``per-tensor`` (one scale per weight
    tensor: smaller files, as the quantization parameters of thin layers
    stop dominating).

    Example:
        >>> m = convert("model.keras", "runs/m", to="tflite:fp32")  # doctest: +SKIP
        >>> m["artifacts"][0]["parity"]["within_tolerance"]  # doctest: +SKIP
        True
    """
    is_path = isinstance(source, (str, os.PathLike))
    if is_path and Path(source).suffix == ".tflite":
        from edgekit.edgetpu import compile_tflite

        return compile_tflite(source, out, to=to, timeout=timeout)
    if not is_path and not (hasattr(source, "save") and hasattr(source, "inputs")):
        raise InputError(f"source must be a model path or a Keras model, not {type(source).__name__}")
    model_path = resolve_source(source) if is_path else None
    tokens = parse_tokens(to, calib is not None)
    if calib is not None and not callable(calib) and not Path(calib).exists():
        raise InputError(f"{calib}: calibration data not found")
    if int8_io not in ("int8", "uint8", "float32"):
        raise InputError(f"--int8-io must be int8, uint8 or float32, got {int8_io!r}")
    if EDGETPU in tokens and int8_io == "float32":
        raise InputError("--to edgetpu needs integer inputs and outputs: --int8-io int8 or uint8, not float32")
    if int8_granularity not in ("per-channel", "per-tensor"):
        raise InputError(f"--int8-granularity must be per-channel or per-tensor, got {int8_granularity!r}")
    if batch < 1 or calib_samples < 1 or check_samples < 1:
        raise InputError("--batch, --calib-samples and --check-samples must be >= 1")
    if task is not None and task not in TASKS:
        raise InputError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    run_dir = prepare_run_dir(out)
    work = run_dir / ".edgekit"
    if model_path is None:
        model_path = _save_model_object(source, work)
    if callable(calib):
        calib = _materialize_calibration(calib, work)
    settings = {
        "batch": batch, "opset": opset, "int8_io": int8_io, "int8_granularity": int8_granularity,
        "calib_samples": calib_samples, "check_samples": check_samples,
        "allow_select_tf_ops": allow_select_tf_ops, "unsafe": unsafe, "task": task,
    }  # fmt: skip
    source_sha = _model_object_sha(source) if not is_path else sha256_tree(model_path)
    calib_sha = sha256_tree(calib) if calib is not None else None
    tools = tool_versions()
    key_inputs = {
        "source": source_sha, "calib": calib_sha, "settings": settings, "tools": tools, "code": _converter_code_sha(),
    }  # fmt: skip
    old_manifest = read_manifest(run_dir) or {}
    previous = {a["precision_token"]: a for a in old_manifest.get("artifacts", []) if "precision_token" in a}
    # A deterministic failure (e.g. no 16x8 LSTM kernel) is remembered under its key; a crash is retried.
    failed_before = {f["token"]: f for f in old_manifest.get("failed", []) if f.get("cache_key") and not f.get("crash")}
    stem = model_path.stem if model_path.is_file() else model_path.name
    planned, reused = [], []
    failures: dict[str, dict[str, Any]] = {}
    for token in tokens:
        if token == EDGETPU:  # compiled from the int8 artifact below, never by the worker
            continue
        fmt, precision = token.split(":")
        path = run_dir / f"{stem}_{precision}.{fmt}"
        key = _cache_key(key_inputs, token)
        old = previous.get(token)
        if old and old.get("cache_key") == key and path.is_file() and sha256_file(path) == old.get("sha256"):
            reused.append({**old, "reused": True})
        elif token in failed_before and failed_before[token]["cache_key"] == key:
            failures[token] = failed_before[token]
        else:
            planned.append({"token": token, "path": str(path), "key": key})
    results: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if planned:
        for stale in ("result.json", "current"):
            (work / stale).unlink(missing_ok=True)
        job = {
            "source": str(model_path), "custom_objects": str(custom_objects) if custom_objects else None,
            "calib": str(calib) if calib is not None else None, "artifacts": planned, **settings,
            "run_task": _task_of(source),
        }  # fmt: skip
        job_path = work / "job.json"
        job_path.write_text(json.dumps(job, indent=2))
        for _attempt in range(len(planned) + 1):
            if progress:
                progress(f"converting {len(planned) - len(results)} artifact(s) in a child process")
            code, stderr = _run_worker(job_path, timeout)
            state = (
                json.loads((work / "result.json").read_text())
                if (work / "result.json").is_file()
                else {"artifacts": {}}
            )
            if state.get("fatal"):
                err = InputError if state["fatal"]["exit_code"] == 2 else ConversionError
                raise err(state["fatal"]["message"])
            results = state["artifacts"]
            if code == 0:
                break
            current = (work / "current").read_text().strip() if (work / "current").is_file() else None
            why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.debug("converter stderr:\n%s", stderr)
            if current is None or current in results:
                raise ConversionError(f"the converter process died before converting ({why}): {_last_line(stderr)}")
            results[current] = {
                "ok": False,
                "crash": True,
                "error": f"{current}: the converter process crashed ({why}); other artifacts go on",
            }
            state["artifacts"] = results
            write_json(work / "result.json", state)
            (work / "current").unlink(missing_ok=True)
        meta = json.loads((work / "meta.json").read_text()) if (work / "meta.json").is_file() else {}
    else:
        meta = old_manifest.get("conversion", {})
    artifacts = list(reused)
    warnings = list(meta.get("warnings", []))
    if planned:
        with np.load(work / "reference.npz") as ref:
            x = {k[2:]: ref[k] for k in ref.files if k.startswith("x:")}
            reference = {name: ref[f"y:{name}"] for name in meta["outputs"]}
        for item in planned:
            token, path = item["token"], Path(item["path"])
            outcome = results.get(token, {"ok": False, "error": f"{token}: not produced"})
            if not outcome["ok"]:
                failures[token] = {
                    "token": token,
                    "error": outcome["error"],
                    "cache_key": item["key"],
                    "crash": bool(outcome.get("crash")),
                    "unsupported_op": bool(outcome.get("unsupported_op")),
                }
                path.unlink(missing_ok=True)
                continue
            if progress:
                progress(f"checking {path.name}")
            try:
                artifacts.append(check_artifact(path, token, item["key"], outcome["seconds"], x, reference, meta))
            except ConversionError as exc:
                failures[token] = {"token": token, "error": str(exc), "cache_key": item["key"], "crash": False}
                if isinstance(exc, WrongArtifactError):
                    failures[token]["parity"] = exc.parity
                path.unlink(missing_ok=True)
    for art in artifacts:
        if art.get("verdict") == "out_of_tolerance":
            warnings.append(f"{art['path']}: {_out_of_tolerance(art['parity'])}")
    edgetpu = None
    if EDGETPU in tokens:
        int8 = next((a for a in artifacts if a["precision_token"] == "tflite:int8"), None)
        edgetpu, compiled, failure = compile_for_edgetpu(run_dir, int8["path"] if int8 else None, timeout=timeout)
        if compiled is not None:
            if targets.edgetpu_runtime().available and planned:
                compiled.update(check_on_edgetpu(run_dir / compiled["path"], x, reference, meta))
            artifacts.append(compiled)
        if failure is not None:
            failures[EDGETPU] = failure
    order = {t: i for i, t in enumerate(tokens)}
    artifacts.sort(key=lambda a: order[a["precision_token"]])
    manifest = {
        "edgekit_manifest": 1,
        "stage": "convert",
        "created_at": now(),
        "source": {
            "path": str(model_path),
            "sha256": source_sha,
            "calibration": str(calib) if calib else None,
            "calibration_sha256": calib_sha,
        },
        "settings": {
            **settings,
            "to": tokens,
            "calib_samples_requested": calib_samples,
            "check_samples_requested": check_samples,
            "calib_samples": meta.get("calibration_samples", 0),
            "check_samples": meta.get("check_samples", 0),
            "strict": strict,
        },
        "tools": tools,
        "task": _task_of(source),
        "conversion": meta,
        "artifacts": artifacts,
        "failed": [failures[t] for t in tokens if t in failures],
        "warnings": warnings,
    }
    if edgetpu is not None:
        manifest["edgetpu"] = edgetpu
    write_manifest(run_dir, manifest)
    return manifest


def _task_of(source: Any) -> dict[str, Any]:
    """How to read the model's output (labels, scaler, anomaly threshold), carried over from a run directory."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return (read_manifest(source) or {}).get("task", {})
    return {}


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class WrongArtifactError(ConversionError):
    """A float artifact that does not reproduce its source, or one whose inputs/outputs are not the source's."""

    def __init__(self, message: str, parity: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.parity = parity or {}


def _out_of_tolerance(parity: dict[str, Any]) -> str:
    """One line naming each output outside its tolerance and the figure that put it there."""
    parts = []
    for name in parity.get("failing_outputs", []):
        out = parity["outputs"].get(name)
        if out is None or "check" not in out:
            parts.append(f"output {name!r} " + (f"has shape {out['shape_mismatch'][1]}" if out else "missing"))
            continue
        check = out["check"]
        relation = "<" if check["figure"].endswith(("agreement", "match")) else ">"
        parts.append(f"output {name!r} {check['figure']} {check['value']:.3g} {relation} {check['limit']:g}")
    return "out of tolerance: " + "; ".join(parts)


def check_artifact(
    path: Path,
    token: str,
    key: str,
    seconds: float,
    x: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Run the artifact on the held-out inputs and give it a verdict; return its manifest entry.

    ``x`` and ``reference`` are the check inputs and the source's outputs by
    name; ``meta`` is the conversion record (input and output names in Keras
    order, how each output is compared). An artifact whose inputs or outputs
    are not the source's, by name and order, or a float artifact out of
    tolerance, raises :class:`WrongArtifactError`; a quantized one out of
    tolerance gets ``verdict: out_of_tolerance``.

    Example:
        >>> entry = check_artifact(Path("m_fp32.tflite"), "tflite:fp32", "", 0.0, x, ref, meta)  # doctest: +SKIP
        >>> entry["verdict"]  # doctest: +SKIP
        'pass'
    """
    from edgekit.inspection import inspect_model
    from edgekit.runtime import load

    fmt, precision = token.split(":")
    start = time.perf_counter()
    inputs = [spec["name"] for spec in meta["inputs"]]
    try:
        runner = load(path)
        have_in, have_out = [s.name for s in runner.inputs], [s.name for s in runner.outputs]
        if have_in != inputs or have_out != meta["outputs"]:
            raise WrongArtifactError(
                f"{token}: the artifact's inputs {have_in} / outputs {have_out} are not the model's "
                f"{inputs} / {meta['outputs']} (names in Keras order)"
            )
        outputs = dict(zip(have_out, runner.run(x), strict=True))
    except WrongArtifactError:
        raise
    except EdgekitError as exc:
        flex = fmt == "tflite" and any(op.startswith("CUSTOM:Flex") for op in inspect_model(path)["op_histogram"])
        if not flex:
            raise ConversionError(f"{token}: the converted file does not run: {exc}") from None
        parity: dict[str, Any] = {"unavailable": f"LiteRT's pip wheel has no Flex delegate for TF select ops: {exc}"}
        verdict = "unchecked"
    else:
        kinds = {name: out["kind"] for name, out in meta.get("output_kinds", {}).items()}
        parity = compare(reference, outputs, kinds=kinds, precision=precision)
        verdict = "pass" if parity["within_tolerance"] else "out_of_tolerance"
        if verdict != "pass" and precision in FLOAT_TOLERANCE:
            raise WrongArtifactError(f"{token}: wrong artifact, {_out_of_tolerance(parity)}", parity)
    parity["check_seconds"] = round(time.perf_counter() - start, 3)
    report = inspect_model(path)
    return {
        "path": path.name,  # artifacts sit at the top of the run directory
        "format": fmt,
        "precision": precision,
        "precision_token": token,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "inputs": report["inputs"],
        "outputs": report["outputs"],
        "needs_state_reset": report["needs_state_reset"],
        "verdict": verdict,
        "parity": parity,
        "convert_seconds": seconds,
        "cache_key": key,
        "reused": False,
    }

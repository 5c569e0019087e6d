"""Run the converters in a child process (:mod:`edgekit.converters.worker`) and survive its crashes.

TensorFlow's converters can kill the process that runs them (a segfault in an int8 LSTM conversion). The
worker records which artifact it is working on; when it dies, that artifact is marked crashed and a fresh
worker goes on with the rest, so one crash costs one artifact, never the run.

Example:
    >>> results, meta = convert_in_child(run, inputs, settings, plan)  # doctest: +SKIP
    >>> results["tflite:fp32"]["ok"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.common.io import write_json
from edgekit.errors import ConversionError, InputError
from edgekit.rundir import RunDir, WorkerFiles
from edgekit.stages.convert.inputs import ConvertInputs
from edgekit.stages.convert.plan import Plan
from edgekit.stages.convert.search import MIXED, search_job
from edgekit.stages.convert.settings import ConvertSettings

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def convert_in_child(
    run: RunDir, inputs: ConvertInputs, settings: ConvertSettings, plan: Plan, progress: Progress | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Produce ``plan.todo`` in child processes; return each token's outcome and the conversion record (meta).

    A fatal error of the worker (the model cannot load, bad calibration data) is raised as the error type it
    names; a crash outside any artifact is a :class:`~edgekit.errors.ConversionError`.

    Example:
        >>> results, meta = convert_in_child(run, inputs, ConvertSettings(to="tflite:fp32"), plan)  # doctest: +SKIP
        >>> results["tflite:fp32"]["ok"], meta["outputs"]  # doctest: +SKIP
        (True, ['score'])
    """
    mixed = {"mixed": search_job(inputs, settings)} if any(p.token in MIXED for p in plan.todo) else {}
    files = _write_job(
        run, inputs, settings, [{"token": p.token, "path": str(p.path), "key": p.key} for p in plan.todo], **mixed
    )
    results: dict[str, Any] = {}
    for _attempt in range(len(plan.todo) + 1):
        if progress:
            progress(f"converting {len(plan.todo) - len(results)} artifact(s) in a child process")
        code, stderr = _run_worker(files.job, settings.timeout)
        state = json.loads(files.result.read_text()) if files.result.is_file() else {}
        state.setdefault("artifacts", {})
        if state.get("fatal"):
            err = InputError if state["fatal"]["exit_code"] == 2 else ConversionError
            raise err(state["fatal"]["message"])
        results = state["artifacts"]
        if code == 0:
            break
        _mark_crash(files, state, code, stderr)
    meta = json.loads(files.meta.read_text()) if files.meta.is_file() else {}
    return results, meta


def diagnose_in_child(
    run: RunDir, inputs: ConvertInputs, settings: ConvertSettings, tokens: list[str]
) -> dict[str, list[dict[str, Any]] | dict[str, str]]:
    """Per-layer quantization error of each TFLite token (:mod:`edgekit.converters.diagnose`), by token; a token
    whose diagnosis failed maps to ``{"error": ...}``, and a worker that died leaves every token so.

    Example:
        >>> diagnose_in_child(run, inputs, settings, ["tflite:int8"])["tflite:int8"][0]["op"]  # doctest: +SKIP
        'SUB'
    """
    files = _write_job(run, inputs, settings, [], diagnose=tokens)
    code, stderr = _run_worker(files.job, settings.timeout)
    state = json.loads(files.result.read_text()) if files.result.is_file() else {}
    diagnoses = state.get("diagnoses", {})
    why = f"the diagnosing process died ({code}): {_last_line(stderr)}" if code else "not diagnosed"
    return {token: diagnoses.get(token, {"error": why}) for token in tokens}


def _write_job(
    run: RunDir, inputs: ConvertInputs, settings: ConvertSettings, artifacts: list[dict[str, Any]], **extra: Any
) -> WorkerFiles:
    """The worker's job file (what to convert or diagnose, from what, how), with stale results removed."""
    files = run.worker
    for stale in (files.result, files.current):
        stale.unlink(missing_ok=True)
    job = {
        "source": str(inputs.model_path), "custom_objects": settings.custom_objects,
        "calib": str(inputs.calib) if inputs.calib is not None else None,
        "artifacts": artifacts, **settings.shaping(), "run_task": inputs.run_task, **extra,
    }  # fmt: skip
    files.job.write_text(json.dumps(job, indent=2))
    return files


def _mark_crash(files: WorkerFiles, state: dict[str, Any], code: int, stderr: str) -> None:
    """Record the artifact the dead worker was on as crashed, so the next worker skips it."""
    results = state["artifacts"]
    current = files.current.read_text().strip() if files.current.is_file() else None
    why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    log.debug("converter stderr:\n%s", stderr)
    if current is None or current in results:
        raise ConversionError(f"the converter process died before converting ({why}): {_last_line(stderr)}")
    results[current] = {
        "ok": False,
        "crash": True,
        "error": f"{current}: the converter process crashed ({why}); other artifacts go on",
    }
    write_json(files.result, state)
    files.current.unlink(missing_ok=True)


def _run_worker(job_path: Path, timeout: float) -> tuple[int, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.converters.worker", str(job_path)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip
    return proc.returncode, proc.stderr[-4000:]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""

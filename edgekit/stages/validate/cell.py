"""One measurement cell: an artifact on a target at a thread count, in a fresh process.

Each cell runs in its own Python process (``python -m edgekit.stages.validate.cell job.json``)
so that its peak memory is its own, a crashing invoke cannot take the whole
validation down, and the process imports the runtime lane only. The cell runs
every sample at batch 1 after a warm-up, timing each inference the way
``edgekit bench`` does (set inputs, invoke, read outputs), and writes the
dequantized outputs and the per-sample times beside the job file.

Example:
    >>> result = run_cell(Cell("model_int8.tflite", "cpu", 2), data_npz, work_dir)  # doctest: +SKIP
    >>> result["status"], result["latency_ms"]["p50"]  # doctest: +SKIP
    ('measured', 0.139)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.stages.validate.child import run_module
from edgekit.stages.validate.data import InputsFile

WARMUP = 10
TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Cell:
    """What one cell measures."""

    artifact: str
    target: str
    threads: int
    stream_output: str | None = None  # a streaming file: the windowed output its last step's y stands for
    stream_reduce: dict[str, Any] | None = None  # a streaming scorer: the window reduction of its per-step errors


def measure(cell: Cell, data: InputsFile, outputs_npz: Path, warmup: int = WARMUP) -> dict[str, Any]:
    """Load the artifact on the target, run every sample at batch 1, save outputs; return the figures.

    Status ``unavailable`` (with the reason) when the target cannot run this file here, ``failed`` when the
    file does not load or an invoke fails.

    Example:
        >>> measure(Cell("m.tflite", "gpu", 1), data, Path("out.npz"))["status"]  # doctest: +SKIP
        'unavailable'
    """
    from edgekit.common.timing import latency_summary, peak_rss_mb
    from edgekit.errors import EdgekitError, InferenceError, TargetUnavailableError
    from edgekit.runtime import load
    from edgekit.runtime.specs import dequantize

    if cell.target == "pi":
        from edgekit.stages.validate.pi_cell import measure_on_pi

        return measure_on_pi(cell.artifact, data, outputs_npz)
    start = time.perf_counter()
    try:
        runner = load(cell.artifact, threads=cell.threads, target=cell.target)
    except TargetUnavailableError as exc:
        return {"status": "unavailable", "reason": str(exc)}
    except InferenceError as exc:
        if "compiled for the Edge TPU" in str(exc):
            return {"status": "unavailable", "reason": f"{cell.target}: the file is compiled for the Edge TPU"}
        return {"status": "failed", "reason": str(exc)}
    except EdgekitError as exc:
        return {"status": "failed", "reason": str(exc)}
    init_ms = (time.perf_counter() - start) * 1e3
    if cell.target == "edgetpu" and not getattr(runner.model, "edgetpu_compiled", False):
        return {"status": "unavailable", "reason": "edgetpu: not compiled for the Edge TPU (edgetpu_compiler "
                "makes the *_edgetpu.tflite twin); this file would run on the CPU"}  # fmt: skip
    if cell.stream_output is not None and runner.state_pairs:
        return _measure_stepping(runner, data, outputs_npz, cell, init_ms)
    try:
        arrays = runner.bind(data.feeds([s.name for s in runner.inputs]))
        n = len(arrays[0])
        for i in range(min(warmup, n)):
            runner.invoke_bound([a[i : i + 1] for a in arrays])
        raw: list[list[np.ndarray]] = []
        times = np.empty(n, np.float64)
        clock = time.perf_counter_ns
        for i in range(n):
            row = [a[i : i + 1] for a in arrays]
            t0 = clock()
            raw.append(runner.invoke_bound(row))
            times[i] = clock() - t0
    except EdgekitError as exc:
        return {"status": "failed", "reason": str(exc)}
    outputs = {
        spec.name: np.concatenate([r[k] for r in raw]).astype(np.float32)
        if not spec.is_quantized else dequantize(np.concatenate([r[k] for r in raw]), spec)
        for k, spec in enumerate(runner.outputs)
    }  # fmt: skip
    times /= 1e6
    np.savez(outputs_npz, times_ms=times, **{f"y:{k}": v for k, v in outputs.items()})
    result: dict[str, Any] = {
        "status": "measured",
        "target_used": runner.target_used,
        "backend": runner.backend,
        "samples": n,
        "init_ms": round(init_ms, 3),
        "latency_ms": {k: v for k, v in latency_summary(times).items() if k in ("p50", "p90", "p99", "mean")},
        "peak_rss_mb": peak_rss_mb(),
    }
    if runner.fully_accelerated is not None:
        result["fully_accelerated"] = runner.fully_accelerated
        result["fallback_reason"] = runner.fallback_reason
    return result


def _measure_stepping(runner: Any, data: InputsFile, outputs_npz: Path, cell: Cell, init_ms: float) -> dict:
    """A streaming file on the windowed data: each window stepped through from zero state, its last step's ``y``
    (a scorer: the window score of every step's errors) saved as the windowed model's output; latency is per
    step."""
    from edgekit.common.timing import latency_summary, peak_rss_mb
    from edgekit.errors import EdgekitError
    from edgekit.runtime.streams import step_windows

    (windows,) = data.read().values()
    times: list[int] = []
    try:
        outputs = step_windows(runner, windows, cell.stream_reduce, times)
    except EdgekitError as exc:
        return {"status": "failed", "reason": str(exc)}
    per_step = np.asarray(times, np.float64) / 1e6
    np.savez(outputs_npz, times_ms=per_step, **{f"y:{cell.stream_output}": outputs})
    return {
        "status": "measured", "target_used": runner.target_used, "backend": runner.backend, "samples": len(windows),
        "init_ms": round(init_ms, 3), "latency_per": "step", "steps_per_window": int(windows.shape[1]),
        "latency_ms": {k: v for k, v in latency_summary(per_step).items() if k in ("p50", "p90", "p99", "mean")},
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


def run_cell(cell: Cell, data: InputsFile, work: Path, timeout: float = TIMEOUT_S) -> tuple[dict[str, Any], Path]:
    """Measure ``cell`` in a child process; return its result and the outputs file it wrote.

    A child that dies (a native crash, a timeout) is a ``failed`` cell whose reason says how it died.

    Example:
        >>> result, outputs = run_cell(Cell("m.tflite", "cpu", 2), data, Path("work"))  # doctest: +SKIP
        >>> result["latency_ms"]["p90"] >= result["latency_ms"]["p50"]  # doctest: +SKIP
        True
    """
    work.mkdir(parents=True, exist_ok=True)
    job, result_path, outputs = work / "job.json", work / "result.json", work / "outputs.npz"
    job.write_text(json.dumps({"cell": asdict(cell), "data": asdict(data), "outputs": str(outputs)}))
    args = [str(job), str(result_path)]
    failure = run_module("edgekit.stages.validate.cell", args, expect=result_path, timeout=timeout)
    if failure is not None:
        return {"status": "failed", "reason": f"the measuring process {failure}"}, outputs
    return json.loads(result_path.read_text()), outputs


def _main(job_path: str, result_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    result = measure(Cell(**job["cell"]), InputsFile.from_dict(job["data"]), Path(job["outputs"]))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])

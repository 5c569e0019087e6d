"""``edgekit bench``: latency, throughput and memory of a model on a target.

Latency is the wall time of one inference as a user sees it through
:meth:`Runner.run` minus the float conversion: set inputs, invoke, read outputs.
The per-iteration timer costs well under a microsecond; ``make bench`` checks the
harness against a bare ``invoke()`` loop.

Example:
    >>> result = benchmark("../shared/coral/mobilenet_v1_0.25_128_quant.tflite", runs=50)  # doctest: +SKIP
    >>> result["latency_ms"]["p50"]  # doctest: +SKIP
    1.9
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.readers import read_arrays
from edgekit.common.timing import latency_summary, peak_rss_mb, time_loop
from edgekit.errors import InputError, TargetUnavailableError
from edgekit.limits import limit, over
from edgekit.runtime import Runner, load
from edgekit.runtime.specs import random_input

Progress = Callable[[int, int], None]


def load_input_file(path: str | Path, runner: Runner) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Inputs from ``.npy`` (single-input models) or ``.npz`` (arrays named like the inputs).

    Example:
        >>> load_input_file("missing.npy", runner)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.npy: no such file
    """
    data = read_arrays(path)
    return [data[""]] if Path(path).suffix == ".npy" else dict(data)


def benchmark(
    path: str | Path,
    *,
    threads: int | None = None,
    runs: int = 100,
    warmup: int = 10,
    batch: int = 1,
    target: str = "cpu",
    input_file: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure init time, latency percentiles, throughput and peak RSS.

    A target that is unavailable here is reported (``unavailable_reason``) and
    the model is measured on the CPU instead, with ``target_used: cpu``.

    Example:
        >>> r = benchmark("model.tflite", target="gpu")  # doctest: +SKIP
        >>> r["target_used"], r["unavailable_reason"]  # doctest: +SKIP
        ('cpu', 'gpu unavailable: LiteRT GPU accelerator: ... No adapters found')
    """
    if runs < 1 or warmup < 0 or batch < 1:
        raise InputError(f"need runs >= 1, warmup >= 0, batch >= 1 (got {runs}, {warmup}, {batch})")
    reason = None
    start = time.perf_counter()
    try:
        runner = load(path, threads=threads, target=target)
    except TargetUnavailableError as exc:
        reason = str(exc)
        start = time.perf_counter()
        runner = load(path, threads=threads, target="cpu")
    init_ms = (time.perf_counter() - start) * 1e3
    if input_file is not None:
        inputs: Any = load_input_file(input_file, runner)
    else:
        for spec in runner.inputs:  # refused before anything that size is made, the runtime's buffers included
            dims = [batch if i == 0 and (d is None or batch > 1) else (d or 1) for i, d in enumerate(spec.shape)]
            if (values := int(np.prod(dims, dtype=np.float64))) > limit("input_values"):
                raise InputError(over("input_values", f"{path}: input {spec.name!r} at batch {batch} is {values:,} "
                                                      f"values {dims}"))  # fmt: skip
        inputs = [random_input(spec, batch=batch, seed=i) for i, spec in enumerate(runner.inputs)]
    step = runner.prepared(inputs)
    first_output = step()  # fails fast (invoke errors) before the timed loop
    del first_output
    time_loop(step, warmup)
    times = time_loop(step, runs, progress)
    arrays = runner.bind(inputs)
    actual_batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
    latency = latency_summary(times)
    return {
        "model": str(path),
        "format": runner.format,
        "backend": runner.backend,
        "target_requested": target,
        "target_used": runner.target_used,
        "fully_accelerated": runner.fully_accelerated,
        "fallback_reason": runner.fallback_reason,
        "unavailable_reason": reason,
        "threads": threads,
        "batch": actual_batch,
        "runs": runs,
        "warmup": warmup,
        "input": str(input_file) if input_file else "random",
        "init_ms": round(init_ms, 3),
        "latency_ms": latency,
        "throughput_per_s": round(actual_batch * 1e3 / latency["mean"], 2) if latency["mean"] else None,
        "peak_rss_mb": peak_rss_mb(),
    }


def harness_overhead(
    path: str | Path, *, threads: int | None = None, runs: int = 300, rounds: int = 5
) -> dict[str, Any]:
    """Compare the bench harness with a bare ``Interpreter.invoke()`` loop on one TFLite model.

    Rounds alternate the two loops so drift in machine load hits both alike;
    the ratio is the median over rounds of harness mean / bare mean.

    Example:
        >>> harness_overhead("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")["ratio"] < 1.05  # doctest: +SKIP
        True
    """
    runner = load(path, threads=threads)
    inputs = [random_input(s) for s in runner.inputs]
    step = runner.prepared(inputs)
    interp = runner.raw_interpreter()  # type: ignore[attr-defined]
    for idx, arr in zip(runner._in_idx, runner.bind(inputs), strict=True):  # type: ignore[attr-defined]
        interp.set_tensor(idx, arr)
    invoke = interp.invoke
    time_loop(step, runs // 5)
    ratios, bare_means, harness_means = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(runs):
            invoke()
        bare = (time.perf_counter_ns() - t0) / 1e6 / runs
        harness = float(time_loop(step, runs).mean())
        bare_means.append(bare)
        harness_means.append(harness)
        ratios.append(harness / bare)
    return {
        "model": str(path),
        "runs_per_round": runs,
        "rounds": rounds,
        "bare_invoke_mean_ms": round(float(np.median(bare_means)), 4),
        "harness_mean_ms": round(float(np.median(harness_means)), 4),
        "ratio": round(float(np.median(ratios)), 4),
    }

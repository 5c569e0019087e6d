"""Latency loops, percentiles and peak memory: what ``bench``, ``validate`` and ``make bench`` measure with.

Example:
    >>> latency_summary(time_loop(lambda: None, 5))["p50"] >= 0
    True
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Progress = Callable[[int, int], None]


def time_loop(step: Callable[[], object], runs: int, progress: Progress | None = None) -> np.ndarray:
    """Call ``step`` ``runs`` times; return each call's wall time in milliseconds.

    Example:
        >>> time_loop(lambda: None, 3).shape
        (3,)
    """
    times = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    every = max(runs // 50, 1)
    for i in range(runs):
        start = clock()
        step()
        times[i] = clock() - start
        if progress is not None and i % every == 0:
            progress(i + 1, runs)
    if progress is not None:
        progress(runs, runs)
    return times / 1e6


def latency_summary(times_ms: np.ndarray) -> dict[str, float]:
    """min / mean / p50 / p90 / p99 / max of a latency sample, in ms (3 decimals).

    Example:
        >>> latency_summary(np.array([1.0, 2.0, 3.0]))["p50"]
        2.0
    """
    pct = np.percentile(times_ms, [50, 90, 99])
    values = {
        "p50": pct[0],
        "p90": pct[1],
        "p99": pct[2],
        "mean": times_ms.mean(),
        "min": times_ms.min(),
        "max": times_ms.max(),
    }
    return {k: round(float(v), 3) for k, v in values.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec`` (``ru_maxrss`` of a
    child started by a large parent carries the parent's peak over).

    Example:
        >>> peak_rss_mb() > 0
        True
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)

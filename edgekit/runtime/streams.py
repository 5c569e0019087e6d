"""Streaming files over windows (runtime lane): each window stepped from zero state, and the window reduction a
streaming anomaly scorer applies to its per-step errors.

A streaming scorer's one-step model ends at the squared error of each step; the score the windowed model gives
a window (``streaming.window_reduce`` in the convert record: ``mean``, ``max`` or ``smoothed_max`` over the last
``steps`` errors) is applied here, the same way in ``validate``, convert's thresholds, ``predict --stream`` and
the bundles (whose ``run.py`` carries a copy; a test checks they agree).

Example:
    >>> window_score(np.array([[0.0], [1.0], [0.0], [3.0]]), {"kind": "smoothed_max", "smoothing": 2})
    1.5
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np


def window_score(errors: Any, reduce: dict[str, Any]) -> float:
    """The score of a window of per-step errors (steps, channels): their mean, their max, or ``smoothed_max``
    (the mean over ``smoothing`` steps, its peak per channel, averaged over channels). A window shorter than
    ``smoothing`` (a stream's first rows) is smoothed over the steps it has.

    Example:
        >>> window_score([[1.0, 3.0], [3.0, 5.0]], {"kind": "mean"})
        3.0
    """
    e = np.asarray(errors, np.float64).reshape(len(errors), -1)
    if reduce["kind"] == "mean":
        return float(e.mean())
    if reduce["kind"] == "max":
        return float(e.max())
    k = max(1, min(int(reduce.get("smoothing", 1)), len(e)))
    sums = np.cumsum(np.vstack([np.zeros((1, e.shape[1])), e]), axis=0)
    return float(((sums[k:] - sums[:-k]) / k).max(axis=0).mean())


class RollingScore:
    """The window score over a stream's last ``steps`` per-step errors, pushed one step at a time.

    Example:
        >>> rolling = RollingScore({"kind": "max", "steps": 2})
        >>> [rolling.push(v) for v in ([1.0], [0.0], [0.0])]
        [1.0, 1.0, 0.0]
    """

    def __init__(self, reduce: dict[str, Any]) -> None:
        self.reduce = reduce
        self.rows: deque[np.ndarray] = deque(maxlen=int(reduce["steps"]))

    def push(self, errors: Any) -> float:
        """Add one step's errors; the score of the window that ends with it."""
        self.rows.append(np.asarray(errors, np.float64).reshape(-1))
        return window_score(list(self.rows), self.reduce)

    @property
    def full(self) -> bool:
        """Whether the window holds ``steps`` rows (before, the score covers the rows seen so far)."""
        return len(self.rows) == self.rows.maxlen


def step_windows(runner: Any, windows: np.ndarray, reduce: dict[str, Any] | None = None,
                 times: list[int] | None = None) -> np.ndarray:  # fmt: skip
    """Each window (n, steps, features) stepped through a streaming ``runner`` from zero state: the last step's
    first output per window, or with ``reduce`` the window score of every step's output, (n, 1). ``times``
    collects each step's nanoseconds.

    Example:
        >>> step_windows(edgekit.load("sensor_streaming_fp32.tflite"), windows, reduce).shape  # doctest: +SKIP
        (103, 1)
    """
    import time

    clock, results = time.perf_counter_ns, []
    for window in windows:
        runner.reset()
        ys = []
        for row in window:
            t0 = clock()
            ys.append(np.asarray(runner.step(row)[0], np.float32).reshape(-1))
            if times is not None:
                times.append(clock() - t0)
        results.append([window_score(ys, reduce)] if reduce else ys[-1])
    return np.asarray(results, np.float32)

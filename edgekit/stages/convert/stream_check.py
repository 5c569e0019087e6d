"""Streaming artifacts checked over a stream, not one call: every step of a long held-out stream, state carried.

One call from a realistic state can pass while the state drifts over hundreds of steps (an int8 state path
re-quantized at every step). The worker steps the Keras one-step model over a stream of at least 1,000 samples
(``stream:x`` / ``stream:y`` in its reference file); here each streaming artifact steps through the same stream
with :meth:`~edgekit.runtime.base.Runner.step` and is compared at every step:

- ``max_abs_error`` and, per output value, the mean error over the stream against that value's spread
  (``mean_error_over_spread``, the worst value's);
- ``drift``: the stream holds the same held-out steps twice, state carried throughout; drift is the mean error
  over the last 10 % of the second pass over the same steps' error in the first pass. Same inputs, a longer
  state history: only accumulated state error moves it, not what the data happens to be there. (It counts once
  the error passes 1 % of the spread: a ratio of tiny errors says nothing.) ``drift_last_vs_first_tenth`` is
  the plain ratio of the stream's last and first tenths, for reference: from zero state the first steps are near
  exact, and a tenth's error depends on its data.

fp32 must stay within the float tolerance at every step (1e-4 of the output's magnitude); other precisions
within 10 % of each value's spread on average, with a drift of at most 2. A float file outside it is a wrong
artifact; a quantized one is marked out of tolerance.

Example:
    >>> check_stream(Path("runs/lstm/model_streaming_int8.tflite"), "int8", reference)["drift"]  # doctest: +SKIP
    1.13
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.parity import FLOAT_TOLERANCE

MAX_MEAN_ERROR_OVER_SPREAD = 0.10
MAX_DRIFT = 2.0
DRIFT_FLOOR = 0.01  # errors under this share of the spread do not count as drifting


def stream_reference(path: Path) -> dict[str, np.ndarray] | None:
    """The stream the worker stepped (``x``, ``y``) from its reference file, or None when it made none.

    Example:
        >>> stream_reference(RunDir("runs/m").worker.reference) is None  # doctest: +SKIP
        True
    """
    with np.load(path) as ref:
        found = {k.split(":", 1)[1]: ref[k] for k in ref.files if k.startswith("stream:")}
    return found or None


def check_stream(path: Path, precision: str, reference: dict[str, np.ndarray]) -> dict[str, Any]:
    """Step ``path`` through the reference stream from zero state; its figures and whether they are in tolerance.

    Example:
        >>> check_stream(Path("m_streaming_fp32.tflite"), "fp32", reference)["within_tolerance"]  # doctest: +SKIP
        True
    """
    from edgekit.runtime import load

    x, want = reference["x"], reference["y"]
    with load(path) as runner:
        runner.reset()
        got = np.stack([runner.step(row[None])[0].reshape(want.shape[1:]) for row in x])
    err = np.abs(got.astype(np.float64) - want).reshape(len(x), -1)
    values = want.reshape(len(x), -1).astype(np.float64)
    spread = np.maximum(np.ptp(values, axis=0), 1e-12)
    per_step = err.mean(axis=1)
    floor = 1e-6 * float(spread.max())
    period = int(reference.get("period", len(x)))
    tenth = max(1, period // 10)
    first, last = float(per_step[period - tenth : period].mean()), float(per_step[-tenth:].mean())
    drift = last / max(first, floor)
    plain = float(per_step[-tenth:].mean()) / max(float(per_step[:tenth].mean()), floor)
    over_spread = float((err.mean(axis=0) / spread).max())
    max_abs = float(err.max())
    if precision == "fp32":
        within = max_abs <= FLOAT_TOLERANCE["fp32"] * max(1.0, float(np.abs(values).max()))
        rule = f"every step within {FLOAT_TOLERANCE['fp32']:g} of the output's magnitude"
    else:  # a drift of errors too small to matter (under 1 % of the spread) is no drift
        drifting = drift > MAX_DRIFT and last > DRIFT_FLOOR * float(spread.max())
        within = over_spread <= MAX_MEAN_ERROR_OVER_SPREAD and not drifting
        rule = (f"mean error <= {MAX_MEAN_ERROR_OVER_SPREAD:g} of each value's spread, drift <= {MAX_DRIFT:g} "
                f"where the error passes {DRIFT_FLOOR:g} of it")  # fmt: skip
    return {
        "steps": len(x), "max_abs_error": max_abs, "mean_error_over_spread": round(over_spread, 6),
        "error_first_pass": first, "error_second_pass": last, "drift": round(drift, 4),
        "drift_last_vs_first_tenth": round(plain, 4), "rule": rule,
        "within_tolerance": bool(within),
    }  # fmt: skip


def stream_line(figures: dict[str, Any]) -> str:
    """One line naming what put a streaming artifact out of tolerance.

    Example:
        >>> stream_line({"steps": 1000, "max_abs_error": 0.5, "mean_error_over_spread": 0.2, "drift": 3.0,
        ...              "rule": "r"})
        'over a 1000-step stream: max abs 0.5, mean error 0.2 of the spread, drift 3 (r)'
    """
    figures = {k: f"{v:.3g}" if isinstance(v, float) else v for k, v in figures.items()}
    return (
        f"over a {figures['steps']}-step stream: max abs {figures['max_abs_error']}, mean error "
        f"{figures['mean_error_over_spread']} of the spread, drift {figures['drift']} ({figures['rule']})"
    )


def check_streams(artifacts: list[dict[str, Any]], folder: Path, reference: dict[str, np.ndarray]) -> list[str]:
    """Add ``stream`` figures to each streaming artifact entry; mark a quantized one out of tolerance when the
    stream puts it there. Returns the float artifacts the stream found wrong (their error lines).

    Example:
        >>> check_streams(checked.artifacts, run.root, reference)  # doctest: +SKIP
        []
    """
    wrong = []
    for entry in artifacts:
        if entry.get("reused"):
            continue
        figures = check_stream(folder / entry["path"], entry["precision"], reference)
        entry["stream"] = figures
        entry["streaming"] = True
        if figures["within_tolerance"]:
            continue
        if entry["precision"] == "fp32":
            wrong.append(f"{entry['precision_token']}: wrong artifact, {stream_line(figures)}")
        elif entry.get("verdict") == "pass":
            entry["verdict"] = "out_of_tolerance"
            entry["parity"] = {**entry["parity"], "within_tolerance": False, "stream": stream_line(figures)}
    return wrong

"""How closely a converted artifact reproduces its source model on the same inputs, output by output.

Every artifact gets a verdict. Float artifacts must reproduce the source to a
tight tolerance (a wrong float file is a broken conversion); quantized ones to
a task-aware tolerance, measured per named output:

| output kind | figure | fp32 | fp16 | dynamic / int8 / 16x8 |
|---|---|---|---|---|
| any float output | max abs error / max abs reference | ≤ 1e-4 | ≤ 2e-2 | (reported) |
| classifier (softmax) | top-1 agreement | | | ≥ 0.90 |
| binary-classifier (sigmoid) | decision agreement at 0.5 | | | ≥ 0.90 |
| regressor, forecaster, reconstruction | RMSE / std of the reference | | | ≤ 0.25 |
| integer output | exact matches | = 1.0 | = 1.0 | ≥ 0.90 |

Example:
    >>> ref = {"probs": np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)}
    >>> r = compare(ref, {"probs": ref["probs"] + 0.01}, kinds={"probs": "classifier"}, precision="int8")
    >>> r["top1_agreement"], r["within_tolerance"]
    (1.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

TASKS = ("classifier", "binary-classifier", "regressor", "forecaster", "autoencoder", "multi-head")
FLOAT_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # max abs error relative to the output's max magnitude
AGREEMENT_MIN = 0.90  # quantized classifiers: top-1 (or decision) agreement with the source
NRMSE_MAX = 0.25  # quantized regressors: RMSE over the reference's standard deviation (R² ≥ 0.94)


def _output(ref: np.ndarray, got: np.ndarray, kind: str, precision: str) -> dict[str, Any]:
    if ref.shape != got.shape:
        return {"kind": kind, "shape_mismatch": [list(ref.shape), list(got.shape)], "within_tolerance": False}
    ref64, got64 = ref.reshape(len(ref), -1).astype(np.float64), got.reshape(len(got), -1).astype(np.float64)
    err = np.abs(ref64 - got64)
    scale = max(float(np.abs(ref64).max()), 1e-12)
    spread = float(ref64.std()) or max(float(np.abs(ref64).mean()), 1e-12)
    r: dict[str, Any] = {
        "kind": kind,
        "max_abs_error": float(err.max()),
        "mean_abs_error": float(err.mean()),
        "max_rel_error": float(err.max() / scale),
        "mean_rel_error": float(err.mean() / max(float(np.abs(ref64).mean()), 1e-12)),
        "nrmse": float(np.sqrt((err**2).mean()) / spread),
    }
    integer = np.issubdtype(ref.dtype, np.integer)
    if integer:
        r["exact_match"] = float(np.mean(ref64 == got64))
    elif kind == "classifier":
        r["top1_agreement"] = float(np.mean(ref64.argmax(-1) == got64.argmax(-1)))
    elif kind == "binary-classifier":
        r["decision_agreement"] = float(np.mean((ref64 > 0.5) == (got64 > 0.5)))
    # The figure that decides the verdict, its limit, and whether the figure must be at least (or at most) it.
    if integer:
        figure, limit, at_least = "exact_match", 1.0 if precision in FLOAT_TOLERANCE else AGREEMENT_MIN, True
    elif precision in FLOAT_TOLERANCE:
        figure, limit, at_least = "max_rel_error", FLOAT_TOLERANCE[precision], False
    elif kind == "classifier":
        figure, limit, at_least = "top1_agreement", AGREEMENT_MIN, True
    elif kind == "binary-classifier":
        figure, limit, at_least = "decision_agreement", AGREEMENT_MIN, True
    else:
        figure, limit, at_least = "nrmse", NRMSE_MAX, False
    value = r[figure]
    ok = value >= limit if at_least else value <= limit
    r["check"] = {"figure": figure, "value": value, "limit": limit}
    r["within_tolerance"] = bool(ok)
    return r


def compare(
    reference: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    *,
    kinds: dict[str, str],
    precision: str,
) -> dict[str, Any]:
    """Per named output: errors, the task's agreement figure and a verdict; overall: the worst of them.

    ``reference`` and ``outputs`` map output names to arrays; an output missing
    from ``outputs`` fails the comparison. ``kinds`` says how each output is
    read (``classifier``, ``binary-classifier``, anything else is compared as
    a regressor).

    Example:
        >>> compare({"y": np.ones((2, 1))}, {"y": np.ones((2, 1))}, kinds={}, precision="fp32")["within_tolerance"]
        True
    """
    missing = [name for name in reference if name not in outputs]
    per = {
        name: _output(ref, outputs[name], kinds.get(name, "regressor"), precision)
        for name, ref in reference.items()
        if name not in missing
    }
    result: dict[str, Any] = {"samples": len(next(iter(reference.values()))), "outputs": per}
    measured = [r for r in per.values() if "max_abs_error" in r]
    for figure in ("max_abs_error", "mean_abs_error", "max_rel_error", "mean_rel_error"):
        if measured:  # the worst output's figure
            result[figure] = max(r[figure] for r in measured)
    agreements = [r["top1_agreement"] for r in per.values() if "top1_agreement" in r]
    if agreements:
        result["top1_agreement"] = min(agreements)
    if missing:
        result["missing_outputs"] = missing
    result["within_tolerance"] = not missing and all(r["within_tolerance"] for r in per.values())
    result["failing_outputs"] = missing + [name for name, r in per.items() if not r["within_tolerance"]]
    return result

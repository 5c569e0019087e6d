"""How closely a converted artifact reproduces its source model on the same inputs.

Example:
    >>> ref = [np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)]
    >>> compare(ref, [ref[0] + 0.01], task="classifier", precision="int8")["top1_agreement"]
    1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # max abs error relative to the output's max magnitude


def compare(reference: list[np.ndarray], outputs: list[np.ndarray], *, task: str, precision: str) -> dict[str, Any]:
    """Max / mean abs error, max / mean relative error, top-1 agreement (classifiers), and a float-tolerance verdict."""
    ref = np.concatenate([r.reshape(len(r), -1) for r in reference], axis=1).astype(np.float64)
    got = np.concatenate([o.reshape(len(o), -1) for o in outputs], axis=1).astype(np.float64)
    err = np.abs(ref - got)
    scale = max(float(np.abs(ref).max()), 1e-12)
    result: dict[str, Any] = {
        "samples": len(ref),
        "max_abs_error": float(err.max()),
        "mean_abs_error": float(err.mean()),
        "max_rel_error": float(err.max() / scale),
        "mean_rel_error": float(err.mean() / max(float(np.abs(ref).mean()), 1e-12)),
    }
    if task == "classifier":
        result["top1_agreement"] = float(np.mean(reference[0].argmax(-1) == outputs[0].argmax(-1)))
    if precision in FLOAT_TOLERANCE:
        result["tolerance"] = FLOAT_TOLERANCE[precision]
        result["within_tolerance"] = bool(result["max_rel_error"] <= FLOAT_TOLERANCE[precision])
    return result

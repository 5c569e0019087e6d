"""Anomaly thresholds: the score above which a sample is an anomaly, from scores of held-out normal data.

A threshold belongs to the file that produces the score: an int8 scorer's scores are shifted and clipped
against the float model's, so each artifact's threshold is calibrated on its own scores with the recipe's
rule (``percentile`` p, or ``mean_std`` k: mean + k·σ).

Example:
    >>> calibrate_threshold(np.arange(101.0), "percentile", 90)
    90.0
    >>> calibrate_threshold(np.array([1.0, 3.0]), "mean_std", 2)
    4.0
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import InputError

METHODS = ("percentile", "mean_std")


def calibrate_threshold(normal_scores: np.ndarray, method: str, value: float) -> float:
    """The threshold ``method`` / ``value`` gives on ``normal_scores`` (one score per held-out normal sample).

    Example:
        >>> calibrate_threshold(np.array([0.5, 1.5]), "mean_std", 3)
        2.5
    """
    scores = np.asarray(normal_scores, np.float64).ravel()
    if method not in METHODS:
        raise InputError(f"threshold method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "percentile":
        return float(np.percentile(scores, value))
    return float(scores.mean() + value * scores.std())

"""What every family's ``train`` returns, and the scalers: inside the graph, or applied before it by the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrainResult:
    """The float32 inference model, its test metrics, and what scoring it needs (task, threshold, scaler).

    Example:
        >>> TrainResult(model=None, metrics={"mae": 1.0}).task
        {}
    """

    model: Any
    metrics: dict[str, float]
    task: dict[str, Any] = field(default_factory=dict)
    standardize: Standardization | None = None  # the model takes standardized input: the saved splits get it too


@dataclass
class Standardization:
    """``(x - mean) / std`` per channel (the last axis), fitted on training data, applied *before* the model.

    Kept out of the graph where int8 needs it there: a raw input whose channels span very different
    ranges gets one int8 scale for all of them, and the small channels lose everything (the
    breast-cancer features run from 0.001 to 4000). Standardized first, every channel gets the same
    resolution. The app applies it, from ``edgekit.json``'s ``preprocessing``.

    Example:
        >>> s = Standardization.fit(np.array([[0.0, 10.0], [2.0, 30.0]]))
        >>> s(np.array([[1.0, 40.0]])).tolist(), s.to_dict()["mean"]
        ([[0.0, 2.0]], [1.0, 20.0])
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardization:
        """Mean and standard deviation of each channel of ``x`` (a constant channel gets std 1)."""
        flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0), np.where(std > 1e-8, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """What the manifest and the bundle carry: per-channel ``mean`` and ``std``, and where they apply."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "axis": -1,
                "applies": "before the model: x_model = (x_raw - mean) / std per channel (last axis)"}  # fmt: skip


def standardizer(train_steps: np.ndarray, name: str = "scale") -> Any:
    """A Normalization layer adapted on training data only (its statistics are weights, so converters freeze them).

    Example:
        >>> standardizer(np.array([[0.0], [2.0]])).mean.numpy().ravel().tolist()  # doctest: +SKIP
        [1.0]
    """
    import keras

    layer = keras.layers.Normalization(axis=-1, name=name)
    layer.adapt(train_steps.reshape(-1, train_steps.shape[-1]))
    return layer

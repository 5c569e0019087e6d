"""What every family's ``train`` returns, and the scaler families put inside their models."""

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

"""LSTM forecaster over sliding windows, and LSTM sequence classifier.

Both are stateless with a fixed window length, so they convert to the fused
TFLite ``UNIDIRECTIONAL_SEQUENCE_LSTM``. The forecaster's scaling is fitted
on the training split only and lives inside the model (a Normalization layer
in front, a Rescaling layer behind), so every artifact takes and returns raw
values.

Example:
    >>> result = train_forecaster(recipe, splits, trainer)  # doctest: +SKIP
    >>> result.metrics["mae"] < 0.8 * result.metrics["naive_mae"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from edgekit.models.common import TrainResult, standardizer
from edgekit.recipes import Recipe


def _lstm_stack(h: Any, units: list[int]) -> Any:
    for i, n in enumerate(units):
        h = keras.layers.LSTM(n, return_sequences=i < len(units) - 1, name=f"lstm_{i}")(h)
    return h


def build_forecaster(window: int, features: int, units: list[int], train_steps: np.ndarray) -> keras.Model:
    """Raw window in, raw next value of the last variable out; the scaler (fitted on ``train_steps``) is in the graph.

    Example:
        >>> build_forecaster(16, 1, [32], np.random.rand(100, 1)).output.shape  # doctest: +SKIP
        (None, 1)
    """
    mean, std = train_steps.mean(0), train_steps.std(0) + 1e-8
    inputs = keras.Input((window, features), name="window")
    h = standardizer(train_steps)(inputs)
    h = keras.layers.Dense(1, dtype="float32", name="next_scaled")(_lstm_stack(h, units))
    outputs = keras.layers.Rescaling(float(std[-1]), offset=float(mean[-1]), dtype="float32", name="unscale")(h)
    return keras.Model(inputs, outputs, name="lstm_forecaster")


def train_forecaster(recipe: Recipe, splits: Any, trainer: Any) -> TrainResult:
    """Fit on the training windows; report test MAE against the naive last-value forecast."""
    steps = splits.x_train.reshape(-1, splits.x_train.shape[-1])  # the scaler sees the training split only
    mean, std = steps.mean(0), steps.std(0) + 1e-8
    with trainer.scope():
        model = build_forecaster(splits.x_train.shape[1], splits.x_train.shape[2], recipe.model.units, steps)
    trainer.fit(model, "train", splits.x_train, splits.y_train, splits.x_val, splits.y_val, loss="mae")
    forecast = model.predict(splits.x_test, verbose=0, batch_size=256)
    naive = splits.x_test[:, -1, -1:]
    mae, naive_mae = float(np.mean(np.abs(forecast - splits.y_test))), float(np.mean(np.abs(naive - splits.y_test)))
    return TrainResult(
        model=model,
        metrics={"mae": mae, "naive_mae": naive_mae, "mae_vs_naive": mae / naive_mae},
        task={"type": "forecaster", "scaler": {"mean": mean.tolist(), "std": std.tolist(), "fitted_on": "train split"}},
    )


def train_sequence_classifier(recipe: Recipe, splits: Any, trainer: Any) -> TrainResult:
    """An LSTM classifier over fixed-length sequences (e.g. digit images read row by row)."""
    classes = int(splits.info["num_classes"])
    with trainer.scope():
        inputs = keras.Input(splits.x_train.shape[1:], name="sequence")
        h = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs) if splits.x_train.max() > 1.5 else inputs
        outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="head")(
            _lstm_stack(h, recipe.model.units)
        )
        model = keras.Model(inputs, outputs, name="lstm_sequence_classifier")
    fit_args = (splits.x_train, splits.y_train, splits.x_val, splits.y_val)
    trainer.fit(model, "train", *fit_args, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    accuracy = float(np.mean(model.predict(splits.x_test, verbose=0).argmax(-1) == splits.y_test))
    return TrainResult(model=model, metrics={"accuracy": accuracy}, task={"type": "classifier"})

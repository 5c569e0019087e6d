"""Autoencoder anomaly detectors: dense (feature vectors), Conv1D and LSTM (sensor windows).

Trained on normal data only. The exported model is a *scorer*: standardized
input in, anomaly score (squared reconstruction error, reduced) out. The
standardization (per-channel mean and std of the normal training split) stays
*outside* the graph, in the run's task and the bundle's preprocessing: inside,
int8 would quantize the raw input with one scale for channels that span very
different ranges (breast-cancer ROC-AUC 0.73 against 0.95 in float), while
standardized input quantizes evenly (ROC-AUC within 0.01 of float on seeds 0-2).
The saved splits are standardized the same way. The threshold is calibrated on
held-out normal data (a percentile, or mean + k·σ); every artifact gets its own.

Example:
    >>> result = train(recipe, splits, trainer)  # doctest: +SKIP
    >>> result.metrics["roc_auc"] >= 0.9, result.task["threshold"] > 0  # doctest: +SKIP
    (True, True)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from edgekit.common.thresholds import calibrate_threshold as calibrate_threshold_by
from edgekit.errors import InputError
from edgekit.models.common import Standardization, TrainResult
from edgekit.recipes import ModelConfig, Recipe, ThresholdConfig

KINDS = ("dense", "conv1d", "lstm", "lstm_causal")
SCORES = ("mean", "max", "smoothed_max")
SMOOTHING_STEPS = 8
EXCURSION_FRACTION = 0.15
CAUSAL_NOISE = 0.5  # σ of the training noise on the standardized input of lstm_causal (seed 1: ROC-AUC 0.86 without)


def _autoencoder(config: ModelConfig, shape: tuple[int, ...]) -> keras.Model:
    """Standardized input → reconstruction (standardized)."""
    inputs = keras.Input(shape, name="scaled")
    if config.kind == "dense":
        h = inputs
        for n in config.units:
            h = keras.layers.Dense(n, activation="relu")(h)
        h = keras.layers.Dense(config.latent, activation="relu", name="latent")(h)
        for n in reversed(config.units):
            h = keras.layers.Dense(n, activation="relu")(h)
        outputs = keras.layers.Dense(shape[-1], dtype="float32")(h)
    elif config.kind == "conv1d":
        if len(shape) != 2 or shape[0] % (2 ** len(config.units)):
            raise InputError(f"model.kind conv1d needs windows whose length divides by {2 ** len(config.units)}")
        h = inputs
        for n in config.units:
            h = keras.layers.Conv1D(n, 5, strides=2, padding="same", activation="relu")(h)
        for n in reversed(config.units):
            h = keras.layers.Conv1DTranspose(n, 5, strides=2, padding="same", activation="relu")(h)
        outputs = keras.layers.Conv1D(shape[-1], 3, padding="same", dtype="float32")(h)
    elif config.kind == "lstm":
        h = keras.layers.LSTM(config.units[0])(inputs)
        h = keras.layers.RepeatVector(shape[0])(h)
        h = keras.layers.LSTM(config.units[0], return_sequences=True)(h)
        outputs = keras.layers.Dense(shape[-1], dtype="float32")(h)  # applied per step
    elif config.kind == "lstm_causal":  # each step from its past alone: it streams (convert --streaming)
        if len(shape) != 2:
            raise InputError("model.kind lstm_causal takes windows (steps, channels)")
        h = keras.layers.GaussianNoise(CAUSAL_NOISE)(inputs)  # denoising: reconstruct from context, not the step
        h = keras.layers.LSTM(config.units[0], return_sequences=True)(h)
        h = keras.layers.Dense(config.latent, activation="tanh", name="latent")(h)
        h = keras.layers.LSTM(config.units[-1], return_sequences=True)(h)
        outputs = keras.layers.Dense(shape[-1], dtype="float32")(h)
    else:
        raise InputError(f"model.kind must be one of {', '.join(KINDS)}, got {config.kind!r}")
    return keras.Model(inputs, outputs, name=f"{config.kind}_autoencoder")


def scorer(autoencoder: keras.Model, shape: tuple[int, ...], reduce: str = "mean") -> keras.Model:
    """Standardized input → anomaly score from its squared reconstruction error, builtin layers only.

    ``reduce`` is ``mean`` (mean squared error: feature vectors), ``max``
    (the largest squared error), or ``smoothed_max`` for sensor windows: the
    squared error averaged over 8 steps, its peak per channel, averaged over
    channels. A short spike or a dropout would vanish in a mean over 64 steps,
    and a plain max follows single noisy steps.

    Example:
        >>> scorer(ae, (30,)).output.shape  # doctest: +SKIP
        (None, 1)
    """
    inputs = keras.Input(shape, name="input")
    error = keras.layers.Subtract(name="error")([inputs, autoencoder(inputs)])
    squared = keras.layers.Multiply(name="squared")([error, error])
    if reduce == "smoothed_max":
        if len(shape) != 2 or shape[0] < SMOOTHING_STEPS:
            raise InputError(f"model.score smoothed_max needs windows of at least {SMOOTHING_STEPS} steps")
        smoothed = keras.layers.AveragePooling1D(SMOOTHING_STEPS, strides=1, name="smoothed")(squared)
        per_channel = keras.layers.GlobalMaxPooling1D(keepdims=True, name="peak")(smoothed)  # (None, 1, channels)
        flat = keras.layers.Reshape((shape[1], 1), name="channels")(per_channel)
        return keras.Model(inputs, keras.layers.GlobalAveragePooling1D(name="score", dtype="float32")(flat),
                           name="anomaly_scorer")  # fmt: skip
    flat = keras.layers.Reshape((int(np.prod(shape)), 1), name="flatten")(squared)
    pool = keras.layers.GlobalMaxPooling1D if reduce == "max" else keras.layers.GlobalAveragePooling1D
    return keras.Model(inputs, pool(name="score", dtype="float32")(flat), name="anomaly_scorer")


def stream_task(score: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """How the scorer streams (``convert --streaming``): its per-step part ends at the squared error, and the
    window reduction of the score is applied to the last ``steps`` errors outside the one-step model.

    Example:
        >>> stream_task("smoothed_max", (64, 3))["window_reduce"]
        {'kind': 'smoothed_max', 'steps': 64, 'smoothing': 8}
    """
    return {
        "outputs": "squared",
        "window_reduce": {
            "kind": score,
            "steps": int(shape[0]),
            "smoothing": SMOOTHING_STEPS if score == "smoothed_max" else 1,
        },
    }


def calibration_excursion(x_train: np.ndarray) -> dict[str, Any]:
    """How far int8 calibration must stretch the input range past the normal data: 1.5x its largest magnitude,
    in ``EXCURSION_FRACTION`` of the calibration samples (see :func:`edgekit.common.calibration.with_excursions`).

    Calibrated on normal data only, the int8 input's edge sits at the largest normal value: a spike beyond it
    is clipped back to a normal-looking input and scores as normal (sensor seed 2: decision agreement 0.91,
    every disagreement an anomaly the int8 file scored normal; 1.0 with the excursions).

    Example:
        >>> calibration_excursion(np.array([[-2.0, 4.0]]))["value"]
        6.0
    """
    return {"value": round(1.5 * float(np.abs(x_train).max()), 3), "fraction": EXCURSION_FRACTION,
            "why": "int8 input range past the normal data, so anomalies are not clipped to normal values"}  # fmt: skip


def calibrate_threshold(normal_scores: np.ndarray, config: ThresholdConfig) -> float:
    """The score above which a sample is an anomaly, from scores of held-out normal data.

    Example:
        >>> calibrate_threshold(np.arange(101.0), ThresholdConfig("percentile", 90))
        90.0
        >>> calibrate_threshold(np.array([1.0, 3.0]), ThresholdConfig("mean_std", 2))
        4.0
    """
    return calibrate_threshold_by(normal_scores, config.method, config.value)


def evaluate(scores: np.ndarray, is_anomaly: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC of the scores, and precision / recall / F1 of ``score > threshold``.

    Example:
        >>> evaluate(np.array([0.1, 0.2, 0.9]), np.array([0, 0, 1]), 0.5)["f1"]
        1.0
    """
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    predicted = (scores > threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(is_anomaly, scores)),
        "precision": float(precision_score(is_anomaly, predicted, zero_division=0)),
        "recall": float(recall_score(is_anomaly, predicted, zero_division=0)),
        "f1": float(f1_score(is_anomaly, predicted, zero_division=0)),
    }


def train(recipe: Recipe, splits: Any, trainer: Any) -> TrainResult:
    """Fit on normal training data, calibrate the threshold on held-out normals, evaluate on the labelled test set."""
    shape = splits.x_train.shape[1:]
    if recipe.model.score not in SCORES:
        raise InputError(f"model.score must be one of {', '.join(SCORES)}, got {recipe.model.score!r}")
    standardize = Standardization.fit(splits.x_train)  # normal training data only; applied before the model
    x_train, x_val, x_test = standardize(splits.x_train), standardize(splits.x_val), standardize(splits.x_test)
    with trainer.scope():
        autoencoder = _autoencoder(recipe.model, shape)
    trainer.fit(autoencoder, "train", x_train, None, x_val, None, loss="mse")
    model = scorer(autoencoder, shape, recipe.model.score)
    threshold = calibrate_threshold(model.predict(x_val, verbose=0).ravel(), recipe.model.threshold)
    metrics = evaluate(model.predict(x_test, verbose=0).ravel(), splits.y_test, threshold)
    task = {
        "type": "anomaly_scorer", "threshold": threshold,
        "score": f"{recipe.model.score} squared error of the standardized input",
        "threshold_method": f"{recipe.model.threshold.method} {recipe.model.threshold.value:g} on held-out normal data",
        "anomaly_if": "score > threshold",
        "threshold_rule": {"method": recipe.model.threshold.method, "value": recipe.model.threshold.value},
        "input_standardization": standardize.to_dict(),
        "calibration_excursion": calibration_excursion(x_train),
    }  # fmt: skip
    if recipe.model.kind == "lstm_causal":
        task["stream"] = stream_task(recipe.model.score, shape)
    return TrainResult(model=model, metrics=metrics, task=task, standardize=standardize)

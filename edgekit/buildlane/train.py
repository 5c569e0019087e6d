"""The TensorFlow side of ``edgekit train``: a recipe's data, its family trainer, the model saved as float32.

Example:
    >>> fitted = fit_recipe(load_recipe("models/lstm_sunspots.yaml"), RunDir("runs/x").prepare())  # doctest: +SKIP
    >>> fitted.metrics["mae"] < fitted.metrics["naive_mae"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.buildlane.datasets import Splits, load_splits
from edgekit.recipes import Recipe
from edgekit.rundir import RunDir, save_calibration, save_normal_split, save_test_split

FAMILY_TRAINERS = {
    "image_classifier": ("edgekit.models.mobilenet", "train"),
    "forecaster": ("edgekit.models.lstm", "train_forecaster"),
    "sequence_classifier": ("edgekit.models.lstm", "train_sequence_classifier"),
    "autoencoder": ("edgekit.models.autoencoder", "train"),
}
Progress = Callable[[str, int, int], None]


@dataclass
class Fitted:
    """What a training run produced, for the train record."""

    splits: Splits
    metrics: dict[str, float]
    task: dict[str, Any]
    policy: str
    policy_reason: str
    replicas: int
    history: list[dict[str, Any]] = field(default_factory=list)


def load_recipe_splits(recipe: Recipe) -> tuple[Splits, Splits | None]:
    """The recipe's splits (and its pre-training splits): bad data fails here, before TensorFlow is imported.

    Example:
        >>> splits, _ = load_recipe_splits(load_recipe("models/lstm_sunspots.yaml"))  # doctest: +SKIP
    """
    splits = load_splits(recipe.data, recipe.family, recipe.train.seed)
    pretrain = load_splits(recipe.pretrain.data, "image_classifier", recipe.train.seed) if recipe.pretrain else None
    return splits, pretrain


def fit_recipe(
    recipe: Recipe,
    run: RunDir,
    splits: Splits,
    pretrain: Splits | None,
    strategy: str = "default",
    progress: Progress | None = None,
) -> Fitted:
    """Train ``recipe`` with its family trainer; write ``model.keras`` (float32), ``calib.npy`` and ``test.npz``.

    Example:
        >>> fit_recipe(recipe, RunDir("runs/ae").prepare(), *load_recipe_splits(recipe)).task  # doctest: +SKIP
    """
    from edgekit.buildlane.training import Trainer

    trainer = Trainer(run.root, recipe.train, strategy, progress)
    module, name = FAMILY_TRAINERS[recipe.family]
    family_train = getattr(importlib.import_module(module), name)
    args = (recipe, splits, trainer, pretrain) if recipe.family == "image_classifier" else (recipe, splits, trainer)
    result = family_train(*args)
    save_float32(result.model, run)
    model_input = result.standardize or (lambda x: x)  # the saved arrays are what the model takes
    save_calibration(run, model_input(splits.x_train))
    save_test_split(run, model_input(splits.x_test), splits.y_test)
    if result.task.get("type") == "anomaly_scorer":  # the held-out normals its threshold came from
        save_normal_split(run, model_input(splits.x_val))
    metrics = {**{k: round(v, 6) for k, v in result.metrics.items()}, **trainer.extra}
    return Fitted(
        splits, metrics, result.task, trainer.policy, trainer.policy_reason, trainer.replicas, trainer.history
    )


def save_float32(model: Any, run: RunDir) -> Any:
    """Save the inference model as float32 ``model.keras`` (a mixed-precision model is rebuilt with the same weights).

    Example:
        >>> save_float32(model, RunDir("runs/ae")).name  # doctest: +SKIP
        'model.keras'
    """
    import keras

    from edgekit.converters.source import as_float32

    keras.mixed_precision.set_global_policy("float32")
    part = run.work / run.model.name
    as_float32(model).save(part)
    return part.replace(run.model)

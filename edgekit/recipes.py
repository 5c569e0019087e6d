"""Recipes: typed YAML configs for ``edgekit train`` / ``edgekit run``.

A recipe names a model family, its data, its model settings and how to train
it. Every section is a dataclass; loading checks each key and type and names
the first one that is wrong, so a typo never silently falls back to a default.

Example:
    >>> r = recipe_from_dict({"name": "ae", "family": "autoencoder", "data": {"source": "sklearn:breast_cancer"}})
    >>> r.train.epochs, r.model.kind
    (30, 'dense')
    >>> bad = {"name": "x", "family": "autoencoder", "data": {"source": "a"}, "train": {"epoch": 3}}
    >>> recipe_from_dict(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgekit.errors.InputError: recipe: unknown key train.epoch (known: batch_size, deterministic, epochs, ...)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.common.budgets import Budgets
from edgekit.errors import InputError
from edgekit.runtime.targets import TARGETS
from edgekit.stages.convert.settings import RUN_DEFAULT_TO, ConvertSettings

FAMILIES = ("image_classifier", "forecaster", "sequence_classifier", "autoencoder")
PRECISIONS = ("auto", "mixed_float16", "mixed_bfloat16", "float32")


@dataclass
class DataConfig:
    """Where the data comes from and how it is split (fractions of the whole)."""

    source: str
    classes: list[int] | None = None  # keep only these labels (image / sequence classifiers)
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    target: str | None = None  # CSV series: the column to forecast (default: the last)
    window: int = 16  # series / sensor windows: time steps per sample
    normal_label: int | None = None  # anomaly detection on a labelled set: the label of normal samples


@dataclass
class FineTuneConfig:
    """Phase 2 of transfer learning: unfreeze the top ``layers`` of the base at a lower learning rate."""

    epochs: int = 8
    layers: int = 40
    learning_rate: float = 1e-4


@dataclass
class PretrainConfig:
    """Pre-train the base on another dataset first, so an offline run is true transfer learning."""

    data: DataConfig
    epochs: int = 10
    learning_rate: float = 2e-3


@dataclass
class ThresholdConfig:
    """How an anomaly detector's threshold is set on held-out normal data."""

    method: str = "percentile"  # percentile | mean_std
    value: float = 99.0  # the percentile, or k in mean + k·σ


@dataclass
class ModelConfig:
    """Model settings; each family reads the keys it needs (see models/*.yaml)."""

    arch: str = "mobilenet_v2"  # image: mobilenet_v2 | mobilenet_v3_small
    alpha: float = 0.35
    input_size: int = 32
    weights: str | None = None  # image base: None, "imagenet", a local .weights.h5 / .keras, or "pretrain"
    dropout: float = 0.2
    augment: bool = True
    units: list[int] = field(default_factory=lambda: [32])  # LSTM layers / autoencoder encoder widths
    kind: str = "dense"  # autoencoder: dense | conv1d | lstm | lstm_causal (streams)
    latent: int = 8
    score: str = "mean"  # autoencoder: mean | max | smoothed_max of the squared reconstruction error
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)


@dataclass
class TrainConfig:
    """Optimization settings, shared by every family."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 8
    precision: str = "auto"
    seed: int = 0
    deterministic: bool = False
    fine_tune: FineTuneConfig | None = None


@dataclass
class ValidateConfig:
    """What ``edgekit run`` validates the artifacts on, and the budgets that fail it (``validate`` flags override)."""

    targets: list[str] = field(default_factory=lambda: ["cpu"])
    threads: list[int] = field(default_factory=lambda: [1])
    budgets: Budgets = field(default_factory=Budgets)


@dataclass
class OptimizeConfig:
    """The budget ``edgekit optimize`` holds a trained run's optimized model to (its flags override)."""

    max_accuracy_drop: float | None = None
    max_error_increase: float | None = None


@dataclass
class Recipe:
    """One training recipe."""

    name: str
    family: str
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig | None = None
    convert: ConvertSettings = field(default_factory=lambda: ConvertSettings(to=RUN_DEFAULT_TO))  # what run converts to
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    path: str | None = None  # where it was read from (not a YAML key)


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null"}.get(
        tp, str(tp)
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` (ints accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        mapping = [o for o in typing.get_args(tp) if dataclasses.is_dataclass(o)]
        if mapping and isinstance(value, dict):  # a section: report its own bad key, not "must be a mapping"
            return _build(mapping[0], value, where)
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except InputError:
                continue
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _build(tp, value, where)
    elif origin is list:
        if isinstance(value, list):
            return [_coerce(v, typing.get_args(tp)[0], f"{where}[{i}]") for i, v in enumerate(value)]
    elif tp is type(None):
        if value is None:
            return None
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise InputError(f"recipe: {where} must be {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in fields:
            raise InputError(f"recipe: unknown key {prefix}{key} (known: {', '.join(sorted(fields))})")
    missing = [
        n for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    if missing:
        raise InputError(f"recipe: missing key {prefix}{missing[0]} ({_type_name(hints[missing[0]])})")
    return cls(**{k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in data.items()})


def recipe_from_dict(data: dict[str, Any], path: str | None = None) -> Recipe:
    """Validate a parsed recipe; raise :class:`InputError` naming the first bad key.

    Example:
        >>> recipe_from_dict({"name": "f", "family": "forecaster", "data": {"source": "s.csv", "window": "12"}})
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: recipe: data.window must be an integer, got '12'
    """
    if not isinstance(data, dict):
        raise InputError(f"recipe{f' {path}' if path else ''}: expected a mapping at the top level")
    recipe = _build(Recipe, data)
    recipe.path = path
    if recipe.family not in FAMILIES:
        raise InputError(f"recipe: family must be one of {', '.join(FAMILIES)}, got {recipe.family!r}")
    if recipe.train.precision not in PRECISIONS:
        raise InputError(f"recipe: train.precision must be one of {', '.join(PRECISIONS)}")
    if recipe.model.threshold.method not in ("percentile", "mean_std"):
        raise InputError("recipe: model.threshold.method must be percentile or mean_std")
    for name, value in (
        ("data.test_fraction", recipe.data.test_fraction),
        ("data.val_fraction", recipe.data.val_fraction),
    ):
        if not 0 < value < 0.5:
            raise InputError(f"recipe: {name} must be between 0 and 0.5, got {value}")
    unknown_targets = [t for t in recipe.validate.targets if t not in TARGETS]
    if unknown_targets or any(n < 1 for n in recipe.validate.threads):
        raise InputError(f"recipe: validate.targets must be from {', '.join(TARGETS)} and threads >= 1")
    if recipe.train.epochs < 1 or recipe.train.batch_size < 1 or recipe.data.window < 2:
        raise InputError("recipe: train.epochs and train.batch_size must be >= 1, data.window >= 2")
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file; relative data paths resolve against the recipe's folder.

    Example:
        >>> load_recipe("models/autoencoder_breast_cancer.yaml").family  # doctest: +SKIP
        'autoencoder'
    """
    import yaml

    from edgekit.common.hints import taken_by

    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml") and (hint := taken_by(p)):
        raise InputError(f"{path}: not a recipe (.yaml): {hint}")
    if not p.is_file():
        raise InputError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    recipe = recipe_from_dict(data, str(p))
    for section in (recipe.data, recipe.pretrain.data if recipe.pretrain else None):
        if section and ":" not in section.source and not Path(section.source).is_absolute():
            section.source = str((p.parent / section.source).resolve())
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, for the run manifest.

    Example:
        >>> recipe_to_dict(recipe_from_dict({"name": "a", "family": "autoencoder", "data": {"source": "x"}}))["name"]
        'a'
    """
    return {k: v for k, v in dataclasses.asdict(recipe).items() if k != "path"}

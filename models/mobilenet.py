"""MobileNet transfer learning (MobileNetV2, MobileNetV3-Small) for image classification.

The inference model holds its preprocessing (resize to ``input_size``,
rescale to [-1, 1]); augmentation layers sit only in a training twin that
shares every weight, so exported graphs never contain them. Transfer is two
phases: a new head over the frozen base (called with ``training=False``), then
the top N base layers unfrozen at a lower learning rate, BatchNorm still in
inference mode. The base comes from ``weights``: ``null`` (random), a local
weights file, ``imagenet`` (needs a download; fails clearly offline), or
``pretrain`` (the recipe's ``pretrain`` section trains it on another dataset).

Example:
    >>> result = train(recipe, splits, trainer, pretrain_splits)  # doctest: +SKIP
    >>> result.metrics["accuracy"]  # doctest: +SKIP
    0.97
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from edgekit.errors import InputError
from edgekit.models.common import TrainResult
from edgekit.recipes import ModelConfig, Recipe

ARCHS = ("mobilenet_v2", "mobilenet_v3_small")


def build_base(config: ModelConfig, channels: int) -> keras.Model:
    """The MobileNet feature extractor (no top) at ``input_size`` with ``channels`` input channels.

    Example:
        >>> build_base(ModelConfig(input_size=32), 1).output.shape[-1]  # doctest: +SKIP
        1280
    """
    shape = (config.input_size, config.input_size, channels)
    weights = config.weights if config.weights == "imagenet" else None
    if weights == "imagenet" and channels != 3:
        raise InputError("model.weights: imagenet weights need 3-channel images")
    try:
        if config.arch == "mobilenet_v2":
            base = keras.applications.MobileNetV2(
                input_shape=shape, alpha=config.alpha, include_top=False, weights=weights
            )
        elif config.arch == "mobilenet_v3_small":
            base = keras.applications.MobileNetV3Small(
                input_shape=shape, alpha=config.alpha, include_top=False, weights=weights,
                include_preprocessing=False, minimalistic=True,
            )  # fmt: skip
        else:
            raise InputError(f"model.arch must be one of {', '.join(ARCHS)}, got {config.arch!r}")
    except Exception as exc:  # no such alpha for imagenet, or no network for the download (a bare Exception)
        raise InputError(
            f"model.weights {weights!r} for {config.arch}: {str(exc).splitlines()[0][:200]} "
            "(offline? save the weights elsewhere and set model.weights to the local file)"
        ) from None
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # Keras' 0.999 needs thousands of steps; small datasets give hundreds
    if config.weights not in (None, "imagenet", "pretrain"):
        path = Path(config.weights)
        if not path.is_file():
            raise InputError(f"model.weights: {config.weights} not found (a .weights.h5 or .keras base)")
        try:
            base.load_weights(path)
        except Exception as exc:
            raise InputError(f"model.weights: {config.weights} does not fit {config.arch}: {exc}") from None
    return base


def build(config: ModelConfig, image_shape: tuple[int, ...], classes: int, base: keras.Model) -> tuple[Any, Any]:
    """(inference model, training twin with augmentation) sharing every layer.

    Example:
        >>> infer, twin = build(ModelConfig(), (8, 8, 1), 5, build_base(ModelConfig(), 1))  # doctest: +SKIP
    """
    resize = keras.layers.Resizing(config.input_size, config.input_size, name="resize")
    rescale = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    drop = keras.layers.Dropout(config.dropout, name="head_dropout")
    head = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="head")
    augment = keras.Sequential(
        [keras.layers.RandomTranslation(0.08, 0.08), keras.layers.RandomZoom(0.1)], name="augment"
    )

    def graph(with_augmentation: bool) -> keras.Model:
        inputs = keras.Input(image_shape, name="image")
        h = resize(inputs)
        if with_augmentation and config.augment:
            h = augment(h)
        h = base(rescale(h), training=False)
        return keras.Model(inputs, head(drop(pool(h))), name="mobilenet_transfer")

    return graph(False), graph(True)


def _pretrain(config: ModelConfig, recipe: Recipe, splits: Any, trainer: Any) -> keras.Model:
    """Train a base (BatchNorm in training mode) on the pretraining dataset; return it."""
    with trainer.scope():
        base = build_base(config, splits.x_train.shape[-1])
        inputs = keras.Input(splits.x_train.shape[1:])
        h = keras.layers.Rescaling(1 / 127.5, offset=-1)(
            keras.layers.Resizing(config.input_size, config.input_size)(inputs)
        )
        h = keras.layers.GlobalAveragePooling2D()(base(h))
        classes = int(splits.info["num_classes"])
        model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", dtype="float32")(h))
    trainer.fit(
        model, "pretrain", splits.x_train, splits.y_train, splits.x_val, splits.y_val,
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        epochs=recipe.pretrain.epochs, learning_rate=recipe.pretrain.learning_rate,
    )  # fmt: skip
    trainer.extra["pretrain_accuracy"] = float(model.evaluate(splits.x_test, splits.y_test, verbose=0)[1])
    return base


def train(recipe: Recipe, splits: Any, trainer: Any, pretrain_splits: Any = None) -> TrainResult:
    """Two-phase transfer learning; returns the float32 inference model and test accuracy."""
    config = recipe.model
    if config.weights == "pretrain":
        if pretrain_splits is None:
            raise InputError("model.weights: pretrain needs a pretrain section in the recipe")
        pretrained = _pretrain(config, recipe, pretrain_splits, trainer)
        with trainer.scope():
            base = build_base(config, splits.x_train.shape[-1])
        base.set_weights(pretrained.get_weights())
    else:
        with trainer.scope():
            base = build_base(config, splits.x_train.shape[-1])
    classes = int(splits.info["num_classes"])
    with trainer.scope():
        model, twin = build(config, splits.x_train.shape[1:], classes, base)
    fit_args = (splits.x_train, splits.y_train, splits.x_val, splits.y_val)
    metrics = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    base.trainable = False
    trainer.fit(twin, "head", *fit_args, **metrics)
    head_accuracy = _accuracy(model, splits)
    fine = recipe.train.fine_tune
    if fine and fine.epochs > 0:
        base.trainable = True
        for layer in base.layers[: max(0, len(base.layers) - fine.layers)]:
            layer.trainable = False
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # BN statistics stay frozen: fine-tuning must not re-estimate them
        trainer.fit(twin, "fine_tune", *fit_args, **metrics, epochs=fine.epochs, learning_rate=fine.learning_rate)
    return TrainResult(
        model=model,
        metrics={"accuracy": _accuracy(model, splits), "accuracy_head_only": head_accuracy},
        task={"type": "classifier", "labels": splits.info.get("labels") or splits.info.get("classes")},
    )


def _accuracy(model: keras.Model, splits: Any) -> float:
    probabilities = model.predict(splits.x_test, verbose=0, batch_size=256)
    return float(np.mean(probabilities.argmax(-1) == splits.y_test))

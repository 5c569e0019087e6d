"""The TensorFlow side of ``edgekit optimize``: load the source and its data, bridge it to tf_keras, run the
TFMOT passes with fine-tuning, and write the result back (a Keras 3 ``model.keras``, or a QAT SavedModel).

- pruning and clustering keep the architecture, so their weights are copied back into the Keras 3 model;
- QAT keeps its fake-quant graph, saved as a SavedModel (``model_qat/``) that converts to int8 from the QAT
  graph itself.

Example:
    >>> src = load_source("runs/mobilenet_digits", OptimizeSettings(prune=0.5))  # doctest: +SKIP
    >>> run_passes(src, OptimizeSettings(prune=0.5), RunDir("runs/mn_pruned").prepare()).scores  # doctest: +SKIP
    {'before': 0.97, 'after': 0.96}
"""

from __future__ import annotations

import inspect
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.buildlane.datasets import Splits, load_splits
from edgekit.common.io import sha256_file
from edgekit.converters.source import detect_task, load_keras
from edgekit.errors import InputError
from edgekit.recipes import DataConfig, recipe_from_dict
from edgekit.rundir import RunDir, model_source, save_calibration, save_test_split
from edgekit.runtime.base import format_shape
from edgekit.stages.optimize.measures import score
from edgekit.stages.optimize.settings import OptimizeSettings

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass
class Source:
    """The model to optimize, its data and what it is."""

    model_path: Path
    model: Any
    run_task: dict[str, Any]
    splits: Splits
    detected: dict[str, Any]
    recipe_budget: dict[str, Any] = field(default_factory=dict)  # the train recipe's ``optimize:`` section

    @property
    def classifier(self) -> bool:
        return self.detected["task"] == "classifier"


@dataclass
class Passed:
    """What the passes produced: test scores before / after, the Keras outputs on the test split, the record."""

    scores: dict[str, float]
    outputs: dict[str, np.ndarray]
    bridge_max_abs_diff: float
    folded: list[str]
    recalibrated: list[str]  # BatchNorms whose statistics were re-estimated after pruning
    loss: str
    history: list[dict[str, Any]]
    artifact: dict[str, Any]
    path: Path


def load_source(source: str | Path, settings: OptimizeSettings) -> Source:
    """The Keras model file and the model loaded from it, the train record's task, the splits, the detected task.

    Without a recipe the split follows the task: stratified for classifiers,
    random for regressors and reconstruction models.

    Example:
        >>> load_source("runs/lstm_sunspots", OptimizeSettings(prune=0.5)).detected["task"]  # doctest: +SKIP
        'forecaster'
    """
    data, task, custom_objects = settings.data, settings.task, settings.custom_objects
    model_path = model_source(source)
    trained = (RunDir(source).read_record("train") or {}) if Path(source).is_dir() else {}
    if "recipe" in trained:
        recipe = recipe_from_dict(trained["recipe"])
        if data is not None:
            recipe.data.source = data
        family, recipe_budget = recipe.family, asdict(recipe.optimize)
        config, seed = recipe.data, recipe.train.seed
    elif data is not None:
        family, config, seed, recipe_budget = "", DataConfig(source=data), 0, {}
    else:
        raise InputError(f"{source}: no data to fine-tune on; pass --data (an .npz with x and y, or an image folder)")
    if family == "autoencoder":
        raise InputError(
            "optimize fine-tunes classifiers, regressors and reconstruction models; a trained anomaly scorer "
            "(input → score) is not supported yet: optimize its autoencoder with --data"
        )
    if model_path.suffix not in (".keras", ".h5"):
        raise InputError(f"{source}: optimize needs a Keras model (.keras, .h5 or a train run directory)")
    model = load_keras(model_path, custom_objects=custom_objects)
    detected = detect_task(model, given=task, run_task=trained.get("task"))
    if not family:
        family = "image_classifier" if detected["task"] == "classifier" else "regressor"
    splits = load_splits(config, family, seed)
    _check_targets(model, splits, detected["task"] == "classifier")
    return Source(model_path, model, {"family": family, **trained.get("task", {})}, splits, detected, recipe_budget)


def fine_tune_loss(model_path: str | Path, classifier: bool) -> tuple[Any, str]:
    """The tf_keras loss to fine-tune with, and how it was chosen.

    A ``.keras`` file's ``compile_config`` loss (a name, or a serialized loss
    with its arguments, e.g. ``from_logits``) is rebuilt in tf_keras; without
    one, or when tf_keras has no such loss, the family default is used:
    sparse categorical cross-entropy for classifiers, MAE for forecasters.

    Example:
        >>> fine_tune_loss("runs/mobilenet_digits/model.keras", classifier=True)[1]  # doctest: +SKIP
        'sparse_categorical_crossentropy (family default)'
    """
    import tf_keras

    default = "sparse_categorical_crossentropy" if classifier else "mae"
    loss = None
    if Path(model_path).suffix == ".keras":
        with zipfile.ZipFile(model_path) as archive:
            loss = (json.loads(archive.read("config.json")).get("compile_config") or {}).get("loss")
    if loss is None:
        return default, f"{default} (family default)"
    try:
        if isinstance(loss, str):
            return tf_keras.losses.get(loss), f"{loss} (compile config)"
        cls = getattr(tf_keras.losses, loss["class_name"])
        accepted = set(inspect.signature(cls.__init__).parameters)
        args = {k: v for k, v in loss.get("config", {}).items() if k in accepted}
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items() if k not in ("name", "reduction"))
        return cls(**args), f"{loss['class_name']}({shown}) (compile config)"
    except Exception as exc:
        log.warning("the compiled loss %r has no tf_keras equivalent (%s); fine-tuning with %s", loss, exc, default)
        return default, f"{default} (family default; the compiled loss has no tf_keras equivalent)"


def _check_targets(model: Any, splits: Any, classifier: bool) -> None:
    """Refuse data whose targets do not fit the model's output for the task (class ids, or one value per output)."""
    out_shape, y = tuple(model.outputs[0].shape[1:]), splits.y_test
    if classifier:
        ok = y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and int(y.max()) < int(out_shape[-1])
        want = f"class ids below {out_shape[-1]}"
    else:
        ok = int(np.prod(y.shape[1:], dtype=np.int64)) == int(np.prod(out_shape, dtype=np.int64))
        want = f"one target per output value, {format_shape((None, *out_shape))}"
    if not ok:
        task = "classifier" if classifier else "regressor / autoencoder"
        raise InputError(f"the data's y {format_shape(y.shape)} ({y.dtype}) does not fit a {task}: it needs {want}")


def batchnorm_fits_data(legacy: Any, splits: Splits, classifier: bool, batch_size: int = 32) -> bool:
    """Whether a model's BatchNorm statistics are its training data's: re-estimated on ``x_train``, the model
    scores as well on the validation split (within two samples, or 5 % of its MAE). The statistics are restored.

    Example:
        >>> batchnorm_fits_data(legacy, splits, classifier=True)  # doctest: +SKIP
        False
    """
    import tf_keras

    from edgekit.converters.bridge import recalibrate_batchnorm

    layers = [layer for layer in legacy.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    if not layers:
        return False
    saved = [layer.get_weights() for layer in layers]
    as_is = score(legacy.predict(splits.x_val, verbose=0), splits.y_val, classifier)
    recalibrate_batchnorm(legacy, splits.x_train, batch_size)
    re_estimated = score(legacy.predict(splits.x_val, verbose=0), splits.y_val, classifier)
    for layer, weights in zip(layers, saved, strict=True):
        layer.set_weights(weights)
    fits = re_estimated >= as_is - 2 / len(splits.y_val) if classifier else re_estimated <= 1.05 * as_is
    log.info("BatchNorm statistics %s this data (validation score %.4g as is, %.4g re-estimated)",
             "fit" if fits else "do not fit", as_is, re_estimated)  # fmt: skip
    return fits


def run_passes(src: Source, settings: OptimizeSettings, run: RunDir, progress: Progress | None = None) -> Passed:
    """Bridge, run the passes with fine-tuning, write the result back into ``run``; return scores and the artifact.

    Example:
        >>> passed = run_passes(load_source("runs/m", s), s, RunDir("runs/m_opt").prepare())  # doctest: +SKIP
        >>> passed.artifact["path"]  # doctest: +SKIP
        'model.keras'
    """
    import keras
    import tf_keras

    from edgekit.converters.bridge import copy_weights_back, fold_batchnorm, recalibrate_batchnorm, to_tf_keras
    from edgekit.converters.source import as_float32
    from edgekit.converters.tfmot_passes import cluster, prune, quantize_aware

    model_path, source_model, splits = src.model_path, src.model, src.splits
    classifier, passes = src.classifier, settings.passes()
    epochs, batch_size = settings.epochs, settings.batch_size
    rates = settings.learning_rates()
    tf_keras.utils.set_random_seed(settings.seed)
    model = as_float32(source_model)
    loss, loss_used = fine_tune_loss(model_path, classifier)
    outputs = {"before": model.predict(splits.x_test, verbose=0)}
    legacy, diff = to_tf_keras(model, [splits.x_test[:8]], flatten=True)
    batchnorms = [layer for layer in legacy.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    for layer in batchnorms:  # clustering and QAT fine-tune with BatchNorm frozen, as transfer learning did
        layer.trainable = False
    # Clusters must be the converted file's values: fold BatchNorm first, or conversion rescales them per channel.
    folded = fold_batchnorm(legacy, [splits.x_test[:8]]) if "cluster" in passes else []
    history: list[dict[str, Any]] = []
    steps = epochs * int(np.ceil(len(splits.x_train) / batch_size))

    def fine_tune_as(stage: str) -> Callable[[Any, list[Any]], None]:
        def fine_tune(wrapped: Any, callbacks: list[Any]) -> None:
            if progress:
                progress(f"{stage}: fine-tuning {epochs} epoch(s)")
            wrapped.compile(tf_keras.optimizers.Adam(rates[stage]), loss)
            fit = wrapped.fit(
                splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val),
                epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=0,
            )  # fmt: skip
            history.append({"stage": stage, **{k: [float(v) for v in vs] for k, vs in fit.history.items()}})

        return fine_tune

    def scored(result: Any) -> Any:  # each pass's own test score, so a chain shows what each pass cost
        history[-1]["test_" + ("accuracy" if classifier else "mae")] = score(
            result.predict(splits.x_test, verbose=0), splits.y_test, classifier
        )
        return result

    current = legacy
    recalibrated: list[str] = []
    if "prune" in passes:
        # Pruning changes every convolution's output distribution. Where BatchNorm's statistics are this data's
        # (the model trained end to end on it), BatchNorm trains with the pruned weights and its statistics are
        # re-estimated after (a frozen one keeps the dense network's: ResNet50, 1 epoch at 50 %, 0.76 -> 0.20
        # frozen, 0.87 adapting). Where they are another data set's (a frozen ImageNet base under a head trained on
        # its features) re-estimating them costs the head its inputs (MobileNetV2 on Coral's images: 0.96 -> 0.80),
        # so they stay. ``--batchnorm`` overrides. Folded BatchNorms (clustering next) hold only a shift.
        adapt = (
            bool(batchnorms)
            and not folded
            and (
                settings.batchnorm == "adapt"
                or (settings.batchnorm == "auto" and batchnorm_fits_data(legacy, splits, classifier, batch_size))
            )
        )
        for layer in batchnorms:
            layer.trainable = adapt
        current = prune(current, passes["prune"], fine_tune_as("prune"), steps)
        for layer in batchnorms:
            layer.trainable = False
        if adapt:
            recalibrated = recalibrate_batchnorm(current, splits.x_train, batch_size)
        current = scored(current)
    if "cluster" in passes:
        sparse = "prune" in passes
        current = scored(cluster(current, passes["cluster"], fine_tune_as("cluster"), preserve_sparsity=sparse))
    if "qat" in passes:
        after = "cluster" if "cluster" in passes else "prune" if "prune" in passes else None
        current = quantize_aware(current, passes["qat"], fine_tune_as("qat"), after, "prune" in passes)
        outputs["after"] = current.predict(splits.x_test, verbose=0)
        path = run.qat_model
        current.save(str(path), save_format="tf")
        artifact = {"path": path.name, "format": "savedmodel", "role": "model"}
    else:
        copy_weights_back(current, model)
        outputs["after"] = model.predict(splits.x_test, verbose=0)
        keras.mixed_precision.set_global_policy("float32")
        path = run.model
        model.save(path)
        artifact = {"path": path.name, "format": "keras", "role": "model", "sha256": sha256_file(path)}
    save_calibration(run, splits.x_train)
    save_test_split(run, splits.x_test, splits.y_test)  # what ``edgekit validate`` of this folder scores on
    scores = {stage: round(score(o, splits.y_test, classifier), 6) for stage, o in outputs.items()}
    return Passed(scores, outputs, diff, folded, recalibrated, loss_used, history, artifact, path)

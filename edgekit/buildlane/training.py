"""Training plumbing shared by every family (build lane: imports TensorFlow and Keras).

Precision policy, distribution strategy, seeds, tf.data pipelines, callbacks
(EarlyStopping with best weights, ModelCheckpoint, ReduceLROnPlateau, CSV
history) and a rich progress bar, behind one :class:`Trainer.fit` call.

Example:
    >>> trainer = Trainer(run_dir, TrainConfig(epochs=5), strategy="default")  # doctest: +SKIP
    >>> with trainer.scope():  # doctest: +SKIP
    ...     model = build()
    >>> trainer.fit(model, "head", x, y, x_val, y_val, loss="mse")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edgekit.common.cpu import cpu_features
from edgekit.errors import InputError, TargetUnavailableError
from edgekit.recipes import TrainConfig

log = logging.getLogger(__name__)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
Progress = Callable[[str, int, int], None]  # (stage, epoch done, epochs)


def measure_step_seconds(policy: str, steps: int = 20) -> float:
    """Median seconds of one training step of a small dense net under ``policy`` (for ``precision: auto``)."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.Sequential([
            keras.Input((256,)), keras.layers.Dense(512, activation="relu"), keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(10, dtype="float32"),
        ])  # fmt: skip
        model.compile("adam", "mse")
        x, y = np.random.default_rng(0).standard_normal((2, 256, 256)).astype(np.float32)[0], np.zeros((256, 10))
        model.train_on_batch(x, y)  # trace
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        return float(np.median(times))
    finally:
        keras.mixed_precision.set_global_policy(previous)


def choose_precision(requested: str) -> tuple[str, str]:
    """The Keras dtype policy to train under, and why.

    ``auto``: mixed_float16 on a GPU; on a CPU with bf16 instructions,
    mixed_bfloat16 only if a measured training step is faster than float32;
    float32 otherwise.

    Example:
        >>> choose_precision("float32")
        ('float32', 'asked for in the recipe')
    """
    if requested != "auto":
        return requested, "asked for in the recipe"
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16", "a GPU is present"
    present = [name for name, here in cpu_features().items() if here and name in BF16_FLAGS]
    if not present:
        return "float32", f"no GPU and no bf16 CPU instructions ({', '.join(BF16_FLAGS)} absent)"
    bf16, fp32 = measure_step_seconds("mixed_bfloat16"), measure_step_seconds("float32")
    if bf16 < fp32:
        return "mixed_bfloat16", f"{', '.join(present)}: bf16 step {bf16 * 1e3:.1f} ms < float32 {fp32 * 1e3:.1f} ms"
    return "float32", f"{', '.join(present)} present but bf16 step {bf16 * 1e3:.1f} ms >= float32 {fp32 * 1e3:.1f} ms"


def make_strategy(name: str) -> Any:
    """``default`` (one device), ``mirrored`` (every local GPU, or the CPU) or ``multiworker`` (from TF_CONFIG).

    Example:
        >>> make_strategy("ring")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --strategy must be default, mirrored or multiworker, got 'ring'
    """
    if name not in ("default", "mirrored", "multiworker"):
        raise InputError(f"--strategy must be default, mirrored or multiworker, got {name!r}")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if "TF_CONFIG" not in os.environ:
        raise TargetUnavailableError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as exc:
        raise InputError(f"TF_CONFIG is not valid JSON: {exc}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


class Trainer:
    """Compiles and fits models for one run: strategy, precision, seeds, data pipeline and callbacks."""

    def __init__(
        self, run_dir: Path, config: TrainConfig, strategy: str = "default", progress: Progress | None = None
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self.progress = progress
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        self.strategy = make_strategy(strategy)
        self.replicas = int(self.strategy.num_replicas_in_sync)
        self.multi_worker = strategy == "multiworker"
        self.policy, self.policy_reason = choose_precision(config.precision)
        keras.mixed_precision.set_global_policy(self.policy)
        self.history: list[dict[str, Any]] = []
        self.extra: dict[str, float] = {}  # figures a family adds to the metrics (e.g. pretrain accuracy)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and compile models inside this (the strategy's scope)."""
        with self.strategy.scope():
            yield

    def dataset(self, x: np.ndarray, y: np.ndarray | None, shuffle: bool) -> Any:
        """A cached, prefetched tf.data pipeline with the global batch (per-replica batch × replicas)."""
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, x if y is None else y)).cache()
        if shuffle:
            data = data.shuffle(len(x), seed=self.config.seed, reshuffle_each_iteration=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return data.batch(self.config.batch_size * self.replicas).prefetch(tf.data.AUTOTUNE).with_options(options)

    def fit(
        self,
        model: Any,
        stage: str,
        x: np.ndarray,
        y: np.ndarray | None,
        x_val: np.ndarray,
        y_val: np.ndarray | None,
        *,
        loss: str,
        metrics: list[str] | None = None,
        epochs: int | None = None,
        learning_rate: float | None = None,
    ) -> dict[str, list[float]]:
        """Compile (in scope) and fit; ``y=None`` trains an autoencoder on ``x``. Returns the Keras history.

        The best weights (lowest validation loss) are restored at the end; the
        best model is also checkpointed to ``checkpoints/<stage>.keras`` and the
        history written to ``history_<stage>.csv``.
        """
        epochs = epochs or self.config.epochs
        if self.multi_worker:
            record = self._fit_custom_loop(model, stage, (x, y, x_val, y_val), loss, epochs, learning_rate)
            self.history.append({"stage": stage, "epochs_run": len(record["loss"]), "loop": "custom", **record})
            return record
        with self.scope():
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate or self.config.learning_rate),
                loss=loss,
                metrics=metrics or [],
            )
        checkpoints = self.run_dir / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        callbacks = [
            keras.callbacks.EarlyStopping(patience=self.config.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(2, self.config.patience // 2), min_lr=1e-6),
            keras.callbacks.ModelCheckpoint(str(checkpoints / f"{stage}.keras"), save_best_only=True),
            keras.callbacks.CSVLogger(str(self.run_dir / f"history_{stage}.csv")),
            _ProgressCallback(stage, epochs, self.progress),
        ]
        history = model.fit(
            self.dataset(x, y, shuffle=True),
            validation_data=self.dataset(x_val, y_val, shuffle=False),
            epochs=epochs,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=0,
        )
        record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.history.append({"stage": stage, "epochs_run": len(record.get("loss", [])), **record})
        return record

    def _fit_custom_loop(
        self, model: Any, stage: str, data: tuple[np.ndarray | None, ...], loss: str, epochs: int, lr: float | None
    ) -> dict[str, list[float]]:
        """A custom distributed loop for MultiWorkerMirroredStrategy.

        Keras 3's ``fit`` cannot run under it (keras-team/keras#20585: its
        symbolic build and metric reduction fail on multi-worker values), so
        this loop does what ``fit`` would: per-replica loss averaged over the
        global batch, a LossScaleOptimizer under mixed_float16, validation loss
        each epoch, early stopping with the best weights restored.
        """
        import tensorflow as tf

        x, y, x_val, y_val = data
        global_batch = self.config.batch_size * self.replicas
        with self.scope():
            optimizer = keras.optimizers.Adam(lr or self.config.learning_rate)
            if self.policy == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss_fn = keras.losses.get(loss)

        def per_example(by: Any, bx: Any, training: bool) -> Any:
            values = loss_fn(by, model(bx, training=training))
            return tf.reduce_mean(tf.reshape(tf.cast(values, tf.float32), (tf.shape(values)[0], -1)), axis=1)

        @tf.function
        def train_step(batch: Any) -> Any:
            def step(bx: Any, by: Any) -> Any:
                with tf.GradientTape() as tape:
                    value = tf.nn.compute_average_loss(per_example(by, bx, True), global_batch_size=global_batch)
                    scaled = optimizer.scale_loss(value) if hasattr(optimizer, "scale_loss") else value
                grads = tape.gradient(scaled, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
                return value

            return self.strategy.reduce("SUM", self.strategy.run(step, args=batch), axis=None)

        @tf.function
        def val_step(batch: Any) -> Any:
            def step(bx: Any, by: Any) -> Any:
                return tf.nn.compute_average_loss(per_example(by, bx, False), global_batch_size=global_batch)

            return self.strategy.reduce("SUM", self.strategy.run(step, args=batch), axis=None)

        train_data = self.strategy.experimental_distribute_dataset(self.dataset(x, y, shuffle=True))
        val_data = self.strategy.experimental_distribute_dataset(self.dataset(x_val, y_val, shuffle=False))
        record: dict[str, list[float]] = {"loss": [], "val_loss": []}
        best, best_weights, waited = float("inf"), model.get_weights(), 0
        for epoch in range(epochs):
            record["loss"].append(float(np.mean([float(train_step(b)) for b in train_data])))
            record["val_loss"].append(float(np.mean([float(val_step(b)) for b in val_data])))
            if self.progress:
                self.progress(stage, epoch + 1, epochs)
            if record["val_loss"][-1] < best:
                best, best_weights, waited = record["val_loss"][-1], model.get_weights(), 0
            else:
                waited += 1
                if waited >= self.config.patience:
                    break
        model.set_weights(best_weights)
        return record


class _ProgressCallback(keras.callbacks.Callback):
    """Reports each finished epoch to the CLI's progress display and the log."""

    def __init__(self, stage: str, epochs: int, progress: Progress | None) -> None:
        super().__init__()
        self.stage, self.epochs, self.progress = stage, epochs, progress

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        log.info("%s epoch %d/%d: %s", self.stage, epoch + 1, self.epochs, {k: round(v, 4) for k, v in logs.items()})
        if self.progress:
            self.progress(self.stage, epoch + 1, self.epochs)

"""`edgekit optimize` on models users bring with `--data` (issue 10): no stratified split for regressors and
autoencoders, mixed-precision sources rebuilt as float32, `--task` and `--custom-objects`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.pipeline import optimize
from tests import keras_models
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # every test trains Keras models and optimizes them


def _conv_autoencoder(tmp_path):
    """A Conv2D autoencoder of 16×16 digits (trained a few epochs): output shape = input shape."""
    import keras

    keras.utils.set_random_seed(0)
    x, _ = keras_models.digits_images(16)
    x = x[..., :1] / 255.0
    image = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(image)
    h = keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(h)
    model = keras.Model(image, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h))
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    model.fit(x, x, epochs=20, batch_size=32, verbose=0)
    model.save(tmp_path / "conv_ae.keras")
    np.savez(tmp_path / "images.npz", x=x)  # no y: the target is the input
    return tmp_path / "conv_ae.keras", tmp_path / "images.npz"


def test_conv_autoencoder_prunes_without_a_stratified_split(tmp_path):
    model, data = _conv_autoencoder(tmp_path)
    # half of a 16-filter autoencoder's weights: MAE +33 % (0.020 -> 0.027), over the default budget's +25 %; this
    # test's bar is absolute (+0.03 on pixels in 0..1)
    manifest = optimize(model, prune=0.5, data=str(data), epochs=6, out=tmp_path / "run", max_error_increase=0.5)
    assert manifest["detected_task"]["task"] == "autoencoder"
    assert manifest["metrics"]["sparsity"] >= 0.45, manifest["metrics"]
    # reconstruction MAE on pixels in 0..1: pruning half the weights costs little
    assert manifest["metrics"]["mae_after"] <= manifest["metrics"]["mae_before"] + 0.03, manifest["metrics"]
    assert manifest["metrics"]["mae_before"] <= 0.1, manifest["metrics"]  # it does reconstruct (mean pixel 0.3)
    assert manifest["metrics"]["mae_int8_after"] <= manifest["metrics"]["mae_after"] + 0.02, manifest["metrics"]


def test_lstm_regressor_and_mixed_float16_source(tmp_path):
    """A plain LSTM regressor (continuous y cannot be stratified), trained under mixed_float16."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        path, _ = keras_models.stacked_lstm(tmp_path / "lstm.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    t = np.arange(3000, dtype=np.float32)
    series = np.sin(t / 8) + 0.1 * np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    windows = np.stack([series[i : i + 25] for i in range(0, len(series) - 25, 3)])
    np.savez(tmp_path / "windows.npz", x=windows[:, :24, None], y=windows[:, 24:])
    manifest = optimize(path, prune=0.5, data=str(tmp_path / "windows.npz"), epochs=2, out=tmp_path / "run",
                        max_error_increase=0.4)  # the default 0.25 is this test's subject elsewhere  # fmt: skip
    assert manifest["detected_task"]["task"] == "regressor"
    assert manifest["bridge_max_abs_diff"] <= 1e-5  # the float32 rebuild, not the float16 graph
    assert manifest["metrics"]["sparsity"] >= 0.45
    # a 24+12-unit LSTM after 2 epochs at 50 %: measured MAE 0.086 -> 0.108 (noise std is 0.1)
    assert manifest["metrics"]["mae_after"] <= 1.4 * manifest["metrics"]["mae_before"], manifest["metrics"]
    assert manifest["metrics"]["mae_int8_after"] <= 1.1 * manifest["metrics"]["mae_after"], manifest["metrics"]


CUSTOM_LAYER = """
import keras


@keras.saving.register_keras_serializable(package="user")
class Gain(keras.layers.Layer):
    def __init__(self, gain=2.0, **kwargs):
        super().__init__(**kwargs)
        self.gain = gain

    def build(self, shape):
        self.bias = self.add_weight(shape=(shape[-1],), initializer="zeros", name="bias")

    def call(self, x):
        return x * self.gain + self.bias

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}
"""


def test_custom_layer_and_task_override(tmp_path):
    """A registered custom layer: `--custom-objects` loads it; the bridge wraps it and TFMOT prunes around it."""
    import importlib.util

    import keras
    from sklearn.datasets import load_breast_cancer

    (tmp_path / "layers.py").write_text(CUSTOM_LAYER)
    spec = importlib.util.spec_from_file_location("user_layers", tmp_path / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(0)
    data = load_breast_cancer()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    features = keras.Input((30,))
    h = module.Gain(0.5, name="gain")(keras.layers.Dense(16, activation="relu")(features))
    model = keras.Model(features, keras.layers.Dense(2, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, data.target, epochs=5, verbose=0)
    model.save(tmp_path / "custom.keras")
    np.savez(tmp_path / "data.npz", x=x, y=data.target)
    args = ["optimize", str(tmp_path / "custom.keras"), "--prune", "0.5", "--data", str(tmp_path / "data.npz"),
            "--epochs", "2", "--out", str(tmp_path / "run")]  # fmt: skip
    without = run_cli(*args)
    assert without.returncode == 2 and "pass --custom-objects" in without.stderr, without.stderr
    with_objects = run_cli(*args, "--custom-objects", str(tmp_path / "layers.py"), "--json")
    assert with_objects.returncode == 0, with_objects.stderr
    manifest = json.loads(with_objects.stdout)
    assert manifest["detected_task"]["task"] == "classifier"
    assert manifest["metrics"]["sparsity"] >= 0.45 and manifest["metrics"]["accuracy_int8_after"] >= 0.9
    forced = run_cli(*args[:-1], str(tmp_path / "run_regressor"), "--custom-objects", str(tmp_path / "layers.py"),
                     "--task", "regressor", "--json")  # fmt: skip
    # class ids cannot train a regressor's two outputs: one line, exit 2
    assert forced.returncode == 2 and "does not fit a regressor" in forced.stderr, forced.stderr
    assert "Traceback" not in forced.stderr and not (tmp_path / "run_regressor").exists()


@pytest.mark.long  # 90 s; fast twins: MobileNetV3Small converts through the bridge, the MobileNetV2 zoo prunes
def test_mobilenet_v3_prunes_through_the_bridge(tmp_path):
    """MobileNetV3 failed in the tf_keras rebuild (`Unknown activation function 'hard_silu'`)."""
    path, x = keras_models.application_classifier(tmp_path / "v3.keras", "MobileNetV3Small")
    _, y = keras_models.digits_images(32)
    np.savez(tmp_path / "digits.npz", x=x, y=y[y < 5])
    # a two-epoch random-init base (near chance): the bridge is what is checked here, not the accuracy budget.
    # BatchNorm frozen: its statistics never left init (momentum 0.99), so `auto` re-estimates them, which makes a
    # confident model whose fp32 file differs from Keras by 1.7e-4 and is refused (see the issue 20 note)
    manifest = optimize(path, prune=0.5, data=str(tmp_path / "digits.npz"), epochs=1, out=tmp_path / "run",
                        max_accuracy_drop=1.0, batchnorm="frozen")  # fmt: skip
    assert manifest["settings"]["batchnorm"] == "frozen" and manifest["batchnorm_recalibrated"] == []
    assert manifest["bridge_max_abs_diff"] <= 1e-5
    assert manifest["metrics"]["sparsity"] >= 0.45, manifest["metrics"]


def test_a_model_made_worse_than_the_budget_exits_4_naming_each_figure(tmp_path):
    """Issue 20: `optimize` exited 0 while accuracy fell from 0.85 to 0.45. 95 % of a small digits MLP pruned in
    one epoch falls further than the default 2 points: the record is written, exit 4, each figure named."""
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, verbose=0)
    model.save(tmp_path / "mlp.keras")
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    args = ["optimize", str(tmp_path / "mlp.keras"), "--prune", "0.95", "--data", str(tmp_path / "digits.npz"),
            "--epochs", "1", "--json"]  # fmt: skip
    res = run_cli(*args, "--out", str(tmp_path / "run"))
    assert res.returncode == 4, res.stderr
    record = json.loads(res.stdout)
    assert record == json.loads((tmp_path / "run" / "manifest.json").read_text())  # written before exit 4
    metrics = record["metrics"]
    assert record["verdict"] == "over_budget" and record["budget"]["from"]["max_accuracy_drop"] == "default"
    assert metrics["accuracy_before"] - metrics["accuracy_after"] > 0.02, metrics
    stderr = " ".join(res.stderr.split())
    assert "accuracy_after" in stderr and "accuracy_int8_after" in stderr and "max_accuracy_drop 0.02" in stderr
    assert (
        "int8_parity" in record["report"]["after"]
        and "within_tolerance" not in record["report"]["after"]["int8_parity"]
    )
    loose = run_cli(*args, "--max-accuracy-drop", "1", "--out", str(tmp_path / "loose"))
    assert loose.returncode == 0 and json.loads(loose.stdout)["verdict"] == "pass", loose.stderr

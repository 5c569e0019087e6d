"""`edgekit convert` answers bad input with one line and exit code 2, and writes no artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_clean_failure, run_cli

pytestmark = pytest.mark.slow  # the fixture builds Keras models; every test runs `edgekit convert`

CUSTOM_LAYER = """
import keras


class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras

    d = tmp_path_factory.mktemp("bad_convert")
    (d / "layers.py").write_text(CUSTOM_LAYER)
    namespace: dict = {}
    exec(CUSTOM_LAYER, namespace)
    inputs = keras.Input((4,))
    keras.Model(inputs, namespace["Doubler"]()(keras.layers.Dense(2)(inputs))).save(d / "custom.keras")
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 3.0)(inputs)).save(d / "lambda.keras")
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(d / "dense.keras")
    (d / "random.keras").write_bytes(np.random.default_rng(0).bytes(2048))
    np.save(d / "wrong.npy", np.zeros((10, 5), np.float32))
    (d / "empty_folder").mkdir()
    (d / "a_file").write_text("x")
    return d


def _convert(*args: str):
    return run_cli("convert", *args)


def test_not_a_model(models, tmp_path):
    assert_clean_failure(_convert(str(models / "random.keras"), "--out", str(tmp_path)), "not a readable Keras model")
    assert not list(tmp_path.glob("*.tflite"))


def test_lambda_needs_unsafe(models, tmp_path):
    assert_clean_failure(_convert(str(models / "lambda.keras"), "--out", str(tmp_path / "a")), "--unsafe")
    res = _convert(str(models / "lambda.keras"), "--out", str(tmp_path / "b"), "--to", "tflite:fp32", "--unsafe")
    assert res.returncode == 0, res.stderr
    # validate's Keras reference needs the same trust: without --unsafe it is unavailable, naming the flag
    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=3 * x)
    args = ("validate", str(tmp_path / "b"), "--data", str(tmp_path / "data.npz"), "--json")
    refused = json.loads(run_cli(*args, "--out", str(tmp_path / "v1")).stdout)["reference"]
    assert refused["status"] == "unavailable" and "--unsafe" in refused["reason"], refused
    trusted = run_cli(*args, "--unsafe", "--out", str(tmp_path / "v2"))
    reference = json.loads(trusted.stdout)["reference"]
    assert trusted.returncode == 0 and reference["status"] == "measured", (trusted.stderr, reference)


def test_unknown_custom_layer_is_named(models, tmp_path):
    assert_clean_failure(
        _convert(str(models / "custom.keras"), "--out", str(tmp_path / "a")), "Doubler", "--custom-objects"
    )
    res = _convert(
        str(models / "custom.keras"),
        "--out",
        str(tmp_path / "b"),
        "--to",
        "tflite:fp32",
        "--custom-objects",
        str(models / "layers.py"),
    )
    assert res.returncode == 0, res.stderr


def test_calibration_of_the_wrong_shape(models, tmp_path):
    res = _convert(str(models / "dense.keras"), "--out", str(tmp_path), "--calib", str(models / "wrong.npy"))
    assert_clean_failure(res, "shape (10, 5)", "expects (?, 4)")
    assert not list(tmp_path.glob("*.tflite")) and not list(tmp_path.glob("*.onnx"))


def test_empty_calibration_folder(models, tmp_path):
    res = _convert(str(models / "dense.keras"), "--out", str(tmp_path), "--calib", str(models / "empty_folder"))
    assert_clean_failure(res, "has no images")


def test_unwritable_out(models):
    assert_clean_failure(_convert(str(models / "dense.keras"), "--out", str(models / "a_file" / "run")), "not writable")


def test_unknown_output_and_int8_without_calibration(models, tmp_path):
    assert_clean_failure(_convert(str(models / "dense.keras"), "--to", "tflite:int4"), "unknown output tflite:int4")
    assert_clean_failure(
        _convert(str(models / "dense.keras"), "--to", "tflite:int8", "--out", str(tmp_path)), "need calibration data"
    )


def test_object_arrays_are_refused_everywhere_edgekit_reads_arrays(models, tmp_path):
    """Issue 30: an .npz / .npy holding Python objects would need unpickling; each reader refuses it in one line."""
    objects = np.array([{"x": 1}, None], dtype=object)
    np.savez(tmp_path / "objects.npz", x=objects)
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    out = tmp_path / "ok"
    assert _convert(str(models / "dense.keras"), "--to", "tflite:fp32", "--out", str(out)).returncode == 0
    model = next(out.glob("*.tflite"))
    message = "holds an array of Python objects (dtype object)"
    for args in (("bench", str(model), "--input", str(tmp_path / "objects.npz")),
                 ("validate", str(model), "--data", str(tmp_path / "objects.npz")),
                 ("convert", str(models / "dense.keras"), "--to", "tflite:int8", "--calib",
                  str(tmp_path / "objects.npy"), "--out", str(tmp_path / "no"))):  # fmt: skip
        assert_clean_failure(run_cli(*args), message)
    assert not (tmp_path / "no").exists()

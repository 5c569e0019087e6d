"""Keras 2 files (issue 30): ``.h5`` models written by tf_keras, the Keras 2 every published ``.h5`` came from.

A DS-CNN trained on scikit-learn's digits and a MobileNetV1 (alpha 0.25) as ``tf_keras.applications`` writes it
both carry ``groups: 1`` in every DepthwiseConv2D config, which Keras 3 refuses; an LSTM carries ``time_major``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_clean_failure, by_token, run_cli

pytestmark = pytest.mark.slow

SHIM = """
import keras


class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    def __init__(self, *args, groups=1, **kwargs):
        super().__init__(*args, **kwargs)
"""


@pytest.fixture(scope="module")
def keras2(tmp_path_factory) -> dict:
    """Keras 2 .h5 files written by tf_keras, with tf_keras' own predictions on their calibration data."""
    import tf_keras as k
    from sklearn.datasets import load_digits

    tmp = tmp_path_factory.mktemp("keras2")
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype(np.float32)
    k.utils.set_random_seed(0)
    inputs = k.Input((8, 8, 1))
    h = k.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    for filters in (16, 32):  # depthwise-separable blocks, as a DS-CNN keyword spotter stacks them
        h = k.layers.DepthwiseConv2D(3, padding="same")(h)
        h = k.layers.BatchNormalization()(h)
        h = k.layers.ReLU()(h)
        h = k.layers.Conv2D(filters, 1, activation="relu")(h)
    h = k.layers.GlobalAveragePooling2D()(h)
    dscnn = k.Model(inputs, k.layers.Dense(10, activation="softmax")(h))
    dscnn.compile("adam", "sparse_categorical_crossentropy")
    dscnn.fit(x, digits.target, epochs=4, batch_size=32, verbose=0)
    mobilenet = k.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=4)
    lstm = k.Sequential([k.Input((12, 2)), k.layers.LSTM(8), k.layers.Dense(1)])
    files = {}
    rng = np.random.default_rng(0)
    for name, model, data in (("dscnn", dscnn, x[:200]),
                              ("mobilenet", mobilenet, rng.uniform(-1, 1, (32, 96, 96, 3)).astype(np.float32)),
                              ("lstm", lstm, rng.standard_normal((64, 12, 2)).astype(np.float32))):  # fmt: skip
        model.save(tmp / f"{name}.h5")
        np.save(tmp / f"{name}_x.npy", data)
        files[name] = {"path": tmp / f"{name}.h5", "x": data, "keras2": model.predict(data, verbose=0)}
    return {"tmp": tmp, **files}


def _tflite_outputs(path, x: np.ndarray) -> np.ndarray:
    import edgekit

    return edgekit.load(path).run(x)[0]


def test_keras2_h5_files_convert_with_no_flag_and_match_keras2(keras2, tmp_path):
    for name in ("dscnn", "mobilenet", "lstm"):
        case = keras2[name]
        out = tmp_path / name
        r = run_cli("convert", str(case["path"]), "--calib", str(keras2["tmp"] / f"{name}_x.npy"),
                    "--to", "tflite:fp32,tflite:int8", "--out", str(out), "--json")  # fmt: skip
        assert r.returncode == 0, (name, r.stderr)
        record = json.loads(r.stdout)
        fixes = record["conversion"]["keras2_fixes"]
        layer, key = ("LSTM", "time_major=False") if name == "lstm" else ("DepthwiseConv2D", "groups=1")
        assert fixes == [f"{layer}: dropped Keras 2's {key}"], fixes
        arts = by_token(record)
        assert all(a["verdict"] == "pass" for a in arts.values()), [(a["path"], a["parity"]) for a in arts.values()]
        got = _tflite_outputs(out / arts["tflite:fp32"]["path"], case["x"][:16])
        scale = max(1.0, float(np.abs(case["keras2"]).max()))
        assert np.abs(got - case["keras2"][:16]).max() <= 1e-4 * scale, name  # the Keras 2 model's own outputs
    digits = json.loads((tmp_path / "dscnn" / "manifest.json").read_text())
    assert by_token(digits)["tflite:int8"]["parity"]["top1_agreement"] >= 0.95


def test_the_fix_gives_the_file_a_manual_shim_gives(keras2, tmp_path):
    """The int8 file made with no flag is the one made through the four-line shim users wrote by hand."""
    shim = tmp_path / "shim.py"
    shim.write_text(SHIM)
    made = {}
    for how, extra in (("auto", []), ("shim", ["--custom-objects", str(shim)])):
        r = run_cli("convert", str(keras2["dscnn"]["path"]), "--calib", str(keras2["tmp"] / "dscnn_x.npy"),
                    "--to", "tflite:int8", "--out", str(tmp_path / how), "--json", *extra)  # fmt: skip
        assert r.returncode == 0, r.stderr
        made[how] = by_token(json.loads(r.stdout))["tflite:int8"]
    assert made["auto"]["parity"]["top1_agreement"] == made["shim"]["parity"]["top1_agreement"]
    assert made["auto"]["parity"]["max_abs_error"] == pytest.approx(made["shim"]["parity"]["max_abs_error"], abs=1e-6)


def test_keras2_load_errors_keep_keras_reason(keras2, tmp_path):
    import shutil

    import h5py
    import tf_keras as k

    broken = tmp_path / "groups2.h5"  # a value no fix may drop: Keras 3's own reason, its last line, is kept
    shutil.copy(keras2["dscnn"]["path"], broken)
    with h5py.File(broken, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        depthwise = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "DepthwiseConv2D")
        depthwise["config"]["groups"] = 2
        f.attrs["model_config"] = json.dumps(config)
    r = run_cli("convert", str(broken), "--to", "tflite:fp32", "--out", str(tmp_path / "no"))
    assert_clean_failure(r, "Unrecognized keyword arguments passed to DepthwiseConv2D: {'groups': 2}")
    assert not (tmp_path / "no").exists()

    archive = tmp_path / "resaved.keras"  # tf_keras' own .keras format: Keras 3 cannot read its classes
    k.models.load_model(keras2["lstm"]["path"]).save(archive)
    r = run_cli("convert", str(archive), "--to", "tflite:fp32", "--out", str(tmp_path / "no2"))
    assert_clean_failure(r, "saved by Keras 2", "save it as .h5")

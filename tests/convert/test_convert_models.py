"""Models users bring: several named inputs and outputs, integer token ids, task detection, wrong artifacts.

Each test reproduces a failure seen on models the zoo did not cover (issue 10) and shows it fixed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.formats.tflite import name_io_in_order
from edgekit.inspection import inspect_model
from edgekit.runtime import load
from edgekit.stages.convert import WrongArtifactError, check_artifact, convert
from edgekit.stages.convert import child as convert_module
from tests import keras_models
from tests.helpers import by_token, run_cli

pytestmark = pytest.mark.slow  # every test builds or trains Keras models and converts them

TOKENS = "tflite:fp32,tflite:fp16,tflite:dynamic,tflite:int8,onnx:fp32,onnx:int8"


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    import keras

    d = tmp_path_factory.mktemp("two_heads")
    path, feeds = keras_models.two_inputs_two_heads(d / "two_heads.keras")
    np.savez(d / "calib.npz", **feeds)
    model = keras.models.load_model(path)
    manifest = convert(path, d / "run", to=TOKENS, calib=d / "calib.npz")
    return d, model, feeds, manifest


def test_every_artifact_has_keras_names_in_keras_order(two_heads):
    d, model, feeds, manifest = two_heads
    assert manifest["failed"] == [] and len(manifest["artifacts"]) == 6
    assert manifest["conversion"]["outputs"] == ["box", "cls"]
    x = {k: v[:50] for k, v in feeds.items()}
    box, cls = model.predict([x["features"], x["tokens"]], verbose=0)
    for art in manifest["artifacts"]:
        runner = load(d / "run" / art["path"])
        assert [s.name for s in runner.inputs] == ["features", "tokens"], art["path"]
        assert [s.name for s in runner.outputs] == ["box", "cls"], art["path"]
        assert art["verdict"] == "pass", (art["path"], art["parity"])
        got_box, got_cls = runner.run(x)  # by name, returned in Keras order
        assert got_box.shape == (50, 4) and got_cls.shape == (50, 5)
        assert np.mean(got_cls.argmax(1) == cls.argmax(1)) >= 0.95, art["path"]
        if art["precision"] == "fp32":
            assert np.abs(got_box - box).max() <= 1e-4 * np.abs(box).max()
        # a list in Keras order is the same call
        assert np.array_equal(runner.run([x["features"], x["tokens"]])[1], got_cls)


def test_parity_is_per_named_output(two_heads):
    _, _, _, manifest = two_heads
    assert manifest["conversion"]["task"] == "multi-head"
    assert manifest["conversion"]["output_kinds"]["cls"]["kind"] == "classifier"
    assert manifest["conversion"]["output_kinds"]["box"]["kind"] == "regressor"
    int8 = by_token(manifest)["tflite:int8"]["parity"]["outputs"]
    assert int8["cls"]["check"]["figure"] == "top1_agreement" and int8["cls"]["top1_agreement"] >= 0.9
    assert int8["box"]["check"]["figure"] == "nrmse" and int8["box"]["nrmse"] <= 0.25


def test_integer_inputs_stay_integer(two_heads):
    d, _, _, manifest = two_heads
    for art in manifest["artifacts"]:
        report = inspect_model(d / "run" / art["path"])
        tokens = report["inputs"][1]
        assert tokens["name"] == "tokens" and tokens["dtype"] == "int32" and tokens["quantization"] is None, art
    int8 = inspect_model(d / "run" / by_token(manifest)["tflite:int8"]["path"])
    assert int8["inputs"][0]["dtype"] == "int8"  # the float input is quantized, the ids are not


def test_embedding_probe_returns_the_right_row_for_every_id(tmp_path):
    """Embedding → first token's vector: an int8 file must return row i for id i (ids snapped to a grid fail)."""
    import keras

    keras.utils.set_random_seed(1)
    ids = keras.Input((4,), dtype="int32", name="ids")
    vectors = keras.layers.Embedding(200, 8, name="table")(ids)
    model = keras.Model(ids, keras.layers.Flatten()(vectors[:, :1, :]))
    model.save(tmp_path / "probe.keras")
    calib = np.random.default_rng(0).integers(0, 200, (300, 4)).astype(np.int32)
    np.save(tmp_path / "ids.npy", calib)
    manifest = convert(
        tmp_path / "probe.keras", tmp_path / "run", to="tflite:int8,onnx:int8", calib=tmp_path / "ids.npy"
    )
    table = model.get_layer("table").get_weights()[0]
    probe = np.stack([np.arange(200), *[np.zeros(200)] * 3], axis=1).astype(np.int32)
    for art in manifest["artifacts"]:
        got = load(tmp_path / "run" / art["path"]).run(probe)[0]
        nearest = np.argmin(((got[:, None, :] - table[None]) ** 2).sum(-1), axis=1)
        assert np.mean(nearest == np.arange(200)) == 1.0, art["path"]


def _tamper_weights(blob: bytes, factor: float) -> bytes:
    """Scale the largest float weight buffer of a TFLite file: a plausible-looking but wrong artifact."""
    from edgekit.formats.tflite import parse_tflite

    model = parse_tflite(blob)
    graph = model.subgraphs[0]
    tensor = max((t for t in graph.tensors if t.is_constant and t.dtype == "float32"), key=lambda t: t.num_elements)
    data = model.buffers[tensor.buffer]
    start = bytes(blob).find(data.tobytes())
    values = np.frombuffer(blob, np.float32, count=len(data) // 4, offset=start) * factor
    return blob[:start] + values.astype(np.float32).tobytes() + blob[start + len(data) :]


def test_a_planted_wrong_artifact_cannot_pass(two_heads, tmp_path, monkeypatch):
    d, _, _, manifest = two_heads
    meta = manifest["conversion"]
    with np.load(d / "run" / ".edgekit" / "reference.npz") as ref:
        x = {k[2:]: ref[k] for k in ref.files if k.startswith("x:")}
        reference = {name: ref[f"y:{name}"] for name in meta["outputs"]}
    good = (d / "run" / by_token(manifest)["tflite:fp32"]["path"]).read_bytes()
    # Outputs in the wrong order (what the converter did before): refused by name.
    swapped = tmp_path / "swapped.tflite"
    swapped.write_bytes(name_io_in_order(good, ["features", "tokens"], ["cls", "box"]))
    with pytest.raises(WrongArtifactError, match="not the model's"):
        check_artifact(swapped, "tflite:fp32", "", 0.0, x, reference, meta)
    # Right names, wrong numbers: out of the fp32 tolerance.
    scaled = tmp_path / "scaled.tflite"
    scaled.write_bytes(_tamper_weights(good, 1.05))
    with pytest.raises(WrongArtifactError, match="out of tolerance: output 'box' max_rel_error"):
        check_artifact(scaled, "tflite:fp32", "", 0.0, x, reference, meta)
    # Through convert(): the real converter runs, then its fp32 file is tampered with before the check.
    real_worker = convert_module._run_worker

    def worker_then_tamper(job_path, timeout):
        code, stderr = real_worker(job_path, timeout)
        for art in json.loads(job_path.read_text())["artifacts"]:
            if art["token"] == "tflite:fp32":
                path = convert_module.Path(art["path"])
                path.write_bytes(_tamper_weights(path.read_bytes(), 1.05))
        return code, stderr

    monkeypatch.setattr(convert_module, "_run_worker", worker_then_tamper)
    out = convert(d / "two_heads.keras", tmp_path / "run", to="tflite:fp32,onnx:fp32")
    assert [f["token"] for f in out["failed"]] == ["tflite:fp32"]
    assert "wrong artifact" in out["failed"][0]["error"] and not (tmp_path / "run" / "two_heads_fp32.tflite").exists()
    assert [a["precision_token"] for a in out["artifacts"]] == ["onnx:fp32"]


def test_quantized_out_of_tolerance_is_named_and_fails_under_strict(tmp_path):
    """An int8 autoencoder calibrated on one sample (ranges clip the rest): named on stderr; exit 3 under --strict."""
    path, x = keras_models.dense_autoencoder(tmp_path / "ae.keras")
    np.save(tmp_path / "calib.npy", x)
    args = ["convert", str(path), "--to", "tflite:int8", "--calib", str(tmp_path / "calib.npy"), "--calib-samples", "1"]
    args += ["--out"]
    lenient = run_cli(*args, str(tmp_path / "run"), "--json")
    manifest = json.loads(lenient.stdout)
    art = manifest["artifacts"][0]
    assert lenient.returncode == 0 and art["verdict"] == "out_of_tolerance", art["parity"]
    assert manifest["conversion"]["task"] == "autoencoder" and art["parity"]["outputs"]  # nrmse measured 0.79
    assert f"edgekit: warning: {art['path']}: out of tolerance: output" in lenient.stderr
    strict = run_cli(*args, str(tmp_path / "run"), "--strict")
    assert strict.returncode == 3, strict.stderr


def test_task_detection_and_override(tmp_path):
    import keras

    from edgekit.converters.source import detect_task

    image = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    conv_ae = keras.Model(image, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h))
    assert detect_task(conv_ae)["task"] == "autoencoder"
    assert detect_task(conv_ae)["outputs"][conv_ae.output_names[0]]["kind"] == "regressor"
    # issue 20: an image decoder whose output is not shaped like its input was guessed a binary classifier
    code = keras.Input((4, 4, 8))
    up = keras.layers.Conv2DTranspose(1, 4, strides=4, activation="sigmoid")(code)
    decoder = detect_task(keras.Model(code, up))
    assert decoder["task"] == "regressor" and "16×16×1 map" in decoder["why"], decoder
    features = keras.Input((30,))
    binary = keras.Model(features, keras.layers.Dense(1, activation="sigmoid")(features))
    assert detect_task(binary)["task"] == "binary-classifier"
    softmax = keras.Model(features, keras.layers.Dense(3, activation="softmax")(features))
    assert detect_task(softmax)["task"] == "classifier"
    heads = keras.Model(
        features, [keras.layers.Dense(2)(features), keras.layers.Dense(3, activation="softmax")(features)]
    )
    assert detect_task(heads)["task"] == "multi-head"
    assert detect_task(softmax, given="regressor")["outputs"][softmax.output_names[0]]["kind"] == "regressor"
    assert "--task" in detect_task(softmax, given="regressor")["why"]


def test_calibration_already_scaled_is_warned_and_counts_are_real(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    x, _ = keras_models.digits_images(16)
    image = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Rescaling(1 / 255)(image)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    model = keras.Model(image, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(h)))
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "scaled.npy", x[:100] / 255.0)
    np.save(tmp_path / "raw.npy", x[:100])
    wrong = convert(tmp_path / "m.keras", tmp_path / "wrong", to="tflite:int8", calib=tmp_path / "scaled.npy")
    right = convert(tmp_path / "m.keras", tmp_path / "right", to="tflite:int8", calib=tmp_path / "raw.npy")
    assert any("spans 0..1" in w and "Rescaling ×0.003922" in w for w in wrong["warnings"]), wrong["warnings"]
    assert not any("spans" in w for w in right["warnings"]), right["warnings"]
    # the Dense(4) output has no activation and the file no compiled loss: its meaning is asked for (issue 28)
    assert any("--output-kind logits" in w for w in right["warnings"])
    assert wrong["conversion"]["calibration_ranges"]["image"]["max"] <= 1.0
    assert right["conversion"]["calibration_ranges"]["image"]["max"] == 255.0
    # 100 samples < 200 + 64: a quarter is held out, and settings say so
    assert right["settings"]["calib_samples"] == 75 and right["settings"]["check_samples"] == 25
    assert right["settings"]["calib_samples_requested"] == 200
    # on real 0..255 inputs the file calibrated on 0..1 is far worse than the right one
    real = x[200:400]
    ref = model.predict(real, verbose=0)
    errors = {}
    for name, manifest in (("wrong", wrong), ("right", right)):
        got = load(tmp_path / name / manifest["artifacts"][0]["path"]).run(real)[0]
        errors[name] = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert errors["wrong"] > 5 * errors["right"], errors


def test_several_inputs_need_an_npz_keyed_by_name(two_heads, tmp_path):
    d, _, feeds, _ = two_heads
    np.save(tmp_path / "features.npy", feeds["features"])
    r = run_cli("convert", str(d / "two_heads.keras"), "--to", "tflite:int8", "--calib", str(tmp_path / "features.npy"),
                "--out", str(tmp_path / "run"))  # fmt: skip
    assert r.returncode == 2 and "pass an .npz keyed by input name" in r.stderr and "Traceback" not in r.stderr
    np.savez(tmp_path / "partial.npz", features=feeds["features"])
    r = run_cli("convert", str(d / "two_heads.keras"), "--to", "tflite:int8", "--calib", str(tmp_path / "partial.npz"),
                "--out", str(tmp_path / "run"))  # fmt: skip
    assert r.returncode == 2 and "no calibration array for input(s) tokens" in r.stderr
    np.savez(tmp_path / "fractional.npz", features=feeds["features"], tokens=feeds["tokens"] + 0.5)
    r = run_cli("convert", str(d / "two_heads.keras"), "--to", "tflite:int8", "--calib",
                str(tmp_path / "fractional.npz"), "--out", str(tmp_path / "run"))  # fmt: skip
    assert r.returncode == 2 and "takes integers (int32)" in r.stderr
    assert not list((tmp_path / "run").glob("*.tflite"))


def test_transformer_block_exports_to_onnx_and_tflite(tmp_path):
    """GELU (erf and tanh forms), LayerNormalization, MultiHeadAttention: tf2onnx used to leave Erfc, ORT refused it."""
    path, x = keras_models.transformer_digits(tmp_path / "transformer.keras")
    np.save(tmp_path / "calib.npy", x)
    manifest = convert(
        path, tmp_path / "run", to="tflite:fp32,tflite:int8,onnx:fp32,onnx:int8", calib=tmp_path / "calib.npy"
    )
    arts = by_token(manifest)
    assert manifest["failed"] == [] and set(arts) == {"tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"}
    for token, art in arts.items():
        assert art["verdict"] == "pass", (token, art["parity"])
    assert arts["onnx:fp32"]["parity"]["max_rel_error"] <= 1e-4
    ops = inspect_model(tmp_path / "run" / arts["onnx:fp32"]["path"])["op_histogram"]
    assert "Erf" in ops and "Erfc" not in ops
    for token in ("tflite:int8", "onnx:int8"):
        assert arts[token]["parity"]["top1_agreement"] >= 0.9, (token, arts[token]["parity"])


def test_unsupported_opset_is_refused_before_any_work(tmp_path):
    path, _ = keras_models.dense_autoencoder(tmp_path / "ae.keras")
    r = run_cli("convert", str(path), "--to", "onnx:fp32", "--opset", "21", "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "--opset 21: tf2onnx 1.17.0 writes opsets 9..18" in r.stderr, r.stderr
    assert not list((tmp_path / "run").glob("*.onnx"))


@pytest.mark.parametrize("layer", ["gru", "simple_rnn"])
def test_gru_and_simple_rnn_int8_are_unrolled_not_crashed(tmp_path, layer):
    """Calibrating a GRU's WHILE loop killed the converter with SIGSEGV; unrolled, it converts to plain int8 ops."""
    path, x = keras_models.digits_rows_rnn(tmp_path / f"{layer}.keras", layer)
    np.save(tmp_path / "calib.npy", x)
    manifest = convert(path, tmp_path / "run", to="tflite:fp32,tflite:int8", calib=tmp_path / "calib.npy")
    arts = by_token(manifest)
    assert manifest["failed"] == [], manifest["failed"]
    assert "unrolled over 8 steps" in manifest["conversion"]["quantized_route"]
    int8 = inspect_model(tmp_path / "run" / arts["tflite:int8"]["path"])
    assert int8["quantization"] == "int8" and "WHILE" not in int8["op_histogram"]
    assert int8["needs_state_reset"] is False
    assert arts["tflite:int8"]["parity"]["top1_agreement"] >= 0.9, arts["tflite:int8"]["parity"]
    assert arts["tflite:fp32"]["verdict"] == "pass"
    # unrolled, its int8 file is larger than the fp32 one (gru 2.5x here): said, and a bundle takes the smaller
    if layer == "gru":
        assert arts["tflite:int8"]["size_bytes"] > arts["tflite:fp32"]["size_bytes"]
        assert any("int8 buys no size here" in w and "unrolled" in w for w in manifest["warnings"])
        r = run_cli("bundle", str(tmp_path / "run"), "--platform", "rpi", "--out", str(tmp_path / "b"), "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["model"]["precision"] == "fp32", r.stderr


# EfficientNetB0 (100 s; bench's coverage table converts it too) is `long`: squeeze-excite and swish are
# MobileNetV3's too
@pytest.mark.parametrize("family", ["MobileNetV3Small", pytest.param("EfficientNetB0", marks=pytest.mark.long)])
def test_keras_applications_convert_with_a_verdict(tmp_path, family):
    """The fast subset of the bench's coverage table: hard_silu / squeeze-excite / swish families."""
    path, x = keras_models.application_classifier(tmp_path / f"{family}.keras", family)
    np.save(tmp_path / "calib.npy", x)
    manifest = convert(path, tmp_path / "run", to="tflite:fp32,tflite:int8,onnx:fp32", calib=tmp_path / "calib.npy")
    arts = by_token(manifest)
    assert manifest["failed"] == [] and set(arts) == {"tflite:fp32", "tflite:int8", "onnx:fp32"}
    for token in ("tflite:fp32", "onnx:fp32"):
        assert arts[token]["verdict"] == "pass", (token, arts[token]["parity"])
    assert arts["tflite:int8"]["parity"]["top1_agreement"] >= 0.8, arts["tflite:int8"]["parity"]


def test_masked_sequences_keep_their_meaning_in_every_artifact(tmp_path):
    """Issue 20: `Embedding(mask_zero=True) → LSTM` was refused (Keras 3 records the mask as a NotEqual node).

    Each digit's 64 pixel tokens sit at offsets 0, 7 and 16 in 80 steps of padding; every artifact must give what
    Keras gives on the 64 tokens alone, with no padding at all.
    """
    import keras
    from sklearn.datasets import load_digits

    path, tokens, _ = keras_models.masked_token_lstm(tmp_path / "masked.keras")
    np.save(tmp_path / "calib.npy", tokens[:300])
    manifest = convert(path, tmp_path / "run", to=TOKENS, calib=tmp_path / "calib.npy")
    arts = by_token(manifest)
    assert manifest["failed"] == [] and set(arts) == set(TOKENS.split(",")), manifest["failed"]
    assert manifest["conversion"]["route"] == "tf_keras bridge (masked: recurrent loop)"
    assert "LSTM unrolled over 80 steps" in manifest["conversion"]["quantized_route"]  # its loop crashes calibration
    model = keras.saving.load_model(path)
    unpadded = keras.Sequential([keras.Input((None,), dtype="int32"), *model.layers])
    pixels = load_digits().data.astype(np.int32)[-60:] + 1  # digits after the calibration rows
    truth = np.asarray(unpadded(pixels))
    for token, art in arts.items():
        runner = load(tmp_path / "run" / art["path"])
        for offset in (0, 7, 16):
            padded = np.zeros((60, 80), np.int32)
            padded[:, offset : offset + 64] = pixels
            got = np.concatenate([runner.run(row[None])[0] for row in padded])
            if token.endswith("fp32"):  # measured 3.6e-7 (TFLite) and 4.9e-7 (ONNX): padding changes nothing
                assert np.abs(got - truth).max() <= 1e-5, (token, offset)
            else:  # measured 0.97-0.98 (int8 TFLite per step scales differ, so offsets differ by up to 0.11)
                assert np.mean(got.argmax(1) == truth.argmax(1)) >= 0.9, (token, offset)


def test_grouped_convolutions_convert_to_onnx(tmp_path):
    """Issue 20: ConvNeXt failed ONNX (`No Op registered for StatefulPartitionedCall`): Keras runs grouped
    convolutions through an XLA function tf2onnx cannot inline. They now become ONNX Conv nodes with `group`."""
    import keras
    import onnx

    path, x = keras_models.grouped_conv_digits(tmp_path / "grouped.keras")
    np.save(tmp_path / "calib.npy", x[:300])
    manifest = convert(path, tmp_path / "run", to="tflite:fp32,onnx:fp32,onnx:int8", calib=tmp_path / "calib.npy")
    arts = by_token(manifest)
    assert manifest["failed"] == [] and arts["onnx:fp32"]["verdict"] == "pass", manifest["failed"]
    assert arts["onnx:int8"]["parity"]["top1_agreement"] >= 0.95, arts["onnx:int8"]["parity"]  # measured
    graph = onnx.load(tmp_path / "run" / arts["onnx:fp32"]["path"]).graph
    groups = sorted(a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group")
    assert groups[-2:] == [4, 16], groups
    expected = keras.saving.load_model(path)(x[-100:])
    got = load(tmp_path / "run" / arts["onnx:fp32"]["path"]).run(x[-100:])[0]
    assert np.abs(got - np.asarray(expected)).max() <= 1e-5


def test_an_op_onnx_lacks_is_refused_under_each_token(tmp_path):
    """The onnx:int8 failure was printed under the name onnx:fp32; an op ONNX lacks is a refusal (exit 2)."""
    import keras

    (tmp_path / "odd.py").write_text(LGAMMA_LAYER)
    namespace: dict = {}
    exec(LGAMMA_LAYER, namespace)
    inputs = keras.Input((8,))
    keras.Model(inputs, keras.layers.Dense(3)(namespace["LogGamma"]()(inputs))).save(tmp_path / "odd.keras")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32))
    calib, out = str(tmp_path / "calib.npy"), str(tmp_path / "run")
    res = run_cli("convert", str(tmp_path / "odd.keras"), "--custom-objects", str(tmp_path / "odd.py"), "--calib",
                  calib, "--to", "onnx:fp32,onnx:int8", "--out", out)  # fmt: skip
    ours = [line for line in res.stderr.splitlines() if line.startswith("edgekit: failed")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert ours == [
        "edgekit: failed: onnx:fp32: TensorFlow op Lgamma has no ONNX equivalent in tf2onnx 1.17.0 (opset 17): "
        "replace the layer that uses it, or convert to TFLite",
        "edgekit: failed: onnx:int8: its fp32 graph: TensorFlow op Lgamma has no ONNX equivalent in tf2onnx 1.17.0 "
        "(opset 17): replace the layer that uses it, or convert to TFLite",
    ], ours


LGAMMA_LAYER = """
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="demo")
class LogGamma(keras.layers.Layer):
    def call(self, x):
        return tf.math.lgamma(tf.abs(x) + 1.0)
"""

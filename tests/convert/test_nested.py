"""Models inside models (issue 30): a VAE built, as the Keras tutorial builds it, from an encoder and a decoder
model, its sampling layer inside the encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_clean_failure, by_token, run_cli

pytestmark = pytest.mark.slow

SAMPLING = """
import keras


@keras.saving.register_keras_serializable(package="vae")
class Sampling(keras.layers.Layer):
    def call(self, inputs):
        z_mean, z_log_var = inputs
        noise = keras.random.normal(keras.ops.shape(z_mean))
        return z_mean + keras.ops.exp(0.5 * z_log_var) * noise
"""


@pytest.fixture(scope="module")
def vae(tmp_path_factory) -> dict:
    """A VAE over scikit-learn's digits (64 features) trained a few epochs: encoder and decoder sub-models."""
    import importlib.util

    import keras
    from sklearn.datasets import load_digits

    tmp = tmp_path_factory.mktemp("vae")
    (tmp / "sampling.py").write_text(SAMPLING)
    spec = importlib.util.spec_from_file_location("vae_sampling", tmp / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(0)
    x = (load_digits().data / 16.0).astype(np.float32)
    inputs = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    z_mean, z_log_var = keras.layers.Dense(4, name="z_mean")(h), keras.layers.Dense(4, name="z_log_var")(h)
    z = module.Sampling(name="sampling")([z_mean, z_log_var])
    encoder = keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")
    latent = keras.Input((4,), name="z")
    decoded = keras.layers.Dense(64, activation="sigmoid", name="pixels_out")(
        keras.layers.Dense(32, activation="relu", name="hidden_out")(latent)
    )
    decoder = keras.Model(latent, decoded, name="decoder")
    outer = keras.Input((64,), name="image")
    model = keras.Model(outer, decoder(encoder(outer)[2]), name="vae")
    model.compile("adam", "binary_crossentropy")
    model.fit(x, x, epochs=3, batch_size=64, verbose=0)
    model.save(tmp / "vae.keras")
    np.save(tmp / "x.npy", x[:300])
    return {"tmp": tmp, "path": tmp / "vae.keras", "objects": tmp / "sampling.py", "x": x, "encoder": encoder}


def test_a_vae_of_sub_models_is_refused_naming_its_sampling_layer(vae, tmp_path):
    r = run_cli("convert", str(vae["path"]), "--custom-objects", str(vae["objects"]), "--to", "tflite:fp32",
                "--out", str(tmp_path / "no"))  # fmt: skip
    assert_clean_failure(r, "layer 'sampling' (Sampling) draws random numbers", "--outputs z_mean,z_log_var")
    assert not (tmp_path / "no").exists()


def test_its_deterministic_path_inside_the_encoder_converts_with_outputs(vae, tmp_path):
    out = tmp_path / "encoder"
    r = run_cli("convert", str(vae["path"]), "--custom-objects", str(vae["objects"]), "--outputs", "z_mean,z_log_var",
                "--calib", str(vae["tmp"] / "x.npy"), "--to", "tflite:fp32,tflite:int8,onnx:fp32", "--out", str(out),
                "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["conversion"]["outputs"] == ["z_mean", "z_log_var"]
    arts = by_token(record)
    assert all(a["verdict"] == "pass" for a in arts.values()), [(a["path"], a["parity"]) for a in arts.values()]
    import edgekit

    want = [np.asarray(t) for t in vae["encoder"](vae["x"][:32], training=False)[:2]]
    got = edgekit.load(out / arts["tflite:fp32"]["path"]).run(vae["x"][:32])
    for w, g in zip(want, got, strict=True):
        assert np.abs(w - g).max() <= 1e-4 * max(1.0, float(np.abs(w).max()))

    # validate reuses what convert was told (the custom objects, the --outputs cut): the Keras reference runs
    np.savez(tmp_path / "data.npz", x=vae["x"][:100])
    r = run_cli("validate", str(out), "--data", str(tmp_path / "data.npz"), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["reference"]["status"] == "measured", report["reference"]
    fp32 = next(c for c in report["results"] if c["precision"] == "fp32")
    assert set(fp32["agreement"]) == {"z_mean", "z_log_var"}
    assert max(a["max_abs_error"] for a in fp32["agreement"].values()) <= 1e-4


def test_text_models_are_refused_or_fixed_to_a_length(tmp_path):
    """Issue 30: the Keras text tutorial's model reads strings through TextVectorization (refused in one line naming
    the layer and the way); its integer variant has an open sequence length, fixed with --input-shape."""
    import keras

    keras.utils.set_random_seed(0)
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=16, name="vectorize")
    vectorizer.adapt(["a fine film", "a dull film", "fine acting", "dull plot"])
    text = keras.Input((1,), dtype="string", name="text")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(vectorizer(text)))
    keras.Model(text, keras.layers.Dense(1, activation="sigmoid")(pooled)).save(tmp_path / "text.keras")
    r = run_cli("convert", str(tmp_path / "text.keras"), "--to", "tflite:fp32", "--out", str(tmp_path / "no"))
    assert_clean_failure(r, "input 'text' takes strings", "'vectorize' (TextVectorization)", "--input-shape NAME=1x16")

    tokens = keras.Input((None,), dtype="int64", name="tokens")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid")(pooled))
    model.save(tmp_path / "ids.keras")
    ids = np.random.default_rng(0).integers(0, 50, (64, 16))
    np.save(tmp_path / "ids.npy", ids)
    r = run_cli("convert", str(tmp_path / "ids.keras"), "--calib", str(tmp_path / "ids.npy"), "--input-shape",
                "tokens=1x16", "--to", "tflite:fp32,onnx:fp32", "--out", str(tmp_path / "ids"), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    arts = by_token(json.loads(r.stdout))
    assert arts["tflite:fp32"]["inputs"][0]["shape"] == [1, 16] and arts["tflite:fp32"]["verdict"] == "pass"
    import edgekit

    got = edgekit.load(tmp_path / "ids" / arts["tflite:fp32"]["path"]).run(ids[:8])[0]
    assert np.abs(got - np.asarray(model(ids[:8]))).max() <= 1e-5
    wrong = run_cli("convert", str(tmp_path / "ids.keras"), "--input-shape", "tokens=1x16x2", "--to", "tflite:fp32",
                    "--out", str(tmp_path / "no2"))  # fmt: skip
    assert_clean_failure(wrong, "--input-shape tokens: 1x16x2 does not fit the model's ?x?")

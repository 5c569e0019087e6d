"""`edgekit convert` on three real Keras 3 models: every output, parity, int8 end to end, fused LSTM."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.inspection import inspect_model
from edgekit.stages.convert import convert
from tests import keras_models
from tests.helpers import by_token, run_cli

pytestmark = pytest.mark.slow  # module fixtures train three Keras models and convert them

ALL = "tflite:fp32,tflite:fp16,tflite:dynamic,tflite:int8,tflite:16x8,onnx:fp32,onnx:int8"


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    d = tmp_path_factory.mktemp("mobilenet")
    path, x = keras_models.mobilenet_digits(d / "mobilenet.keras")
    np.save(d / "calib.npy", x)
    return d, convert(path, d / "run", to=ALL, calib=d / "calib.npy")


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    d = tmp_path_factory.mktemp("lstm")
    path, x = keras_models.stacked_lstm(d / "lstm.keras")
    np.savez(d / "calib.npz", x=x)
    return d, convert(path, d / "run", to=ALL, calib=d / "calib.npz")


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    d = tmp_path_factory.mktemp("ae")
    path, x = keras_models.dense_autoencoder(d / "ae.keras")
    np.save(d / "calib.npy", x)
    return d, path, convert(path, d / "run", to=ALL, calib=d / "calib.npy")


def test_mobilenet_every_output(mobilenet):
    d, manifest = mobilenet
    arts = by_token(manifest)
    assert set(arts) == set(ALL.split(",")) and manifest["failed"] == []
    assert manifest["conversion"]["task"] == "classifier"
    for token in ("tflite:fp32", "tflite:fp16", "onnx:fp32"):
        assert arts[token]["parity"]["within_tolerance"], (token, arts[token]["parity"])
    for token in ("tflite:dynamic", "tflite:int8", "tflite:16x8", "onnx:int8"):
        assert arts[token]["parity"]["top1_agreement"] >= 0.9, (token, arts[token]["parity"])
    int8 = inspect_model(d / "run" / arts["tflite:int8"]["path"])
    assert int8["quantization"] == "int8"
    assert int8["inputs"][0]["dtype"] == "int8" and int8["outputs"][0]["dtype"] == "int8"
    assert inspect_model(d / "run" / arts["tflite:16x8"]["path"])["quantization"] == "int16x8"
    assert inspect_model(d / "run" / arts["tflite:dynamic"]["path"])["quantization"] == "dynamic"
    assert inspect_model(d / "run" / arts["onnx:int8"]["path"])["quantization"] == "int8"
    # At α=0.35 per-channel scales and int64 zero points are a quarter of the int8 file (see README).
    assert arts["tflite:int8"]["size_bytes"] <= 0.42 * arts["tflite:fp32"]["size_bytes"]
    assert arts["tflite:fp16"]["size_bytes"] <= 0.55 * arts["tflite:fp32"]["size_bytes"]


def test_mobilenet_per_tensor_int8_is_under_0_3x_fp32(mobilenet):
    d, per_channel = mobilenet
    fp32_size = by_token(per_channel)["tflite:fp32"]["size_bytes"]
    manifest = convert(
        d / "mobilenet.keras", d / "run_per_tensor", to="tflite:int8,onnx:int8", calib=d / "calib.npy",
        int8_granularity="per-tensor",
    )  # fmt: skip
    arts = by_token(manifest)
    assert arts["tflite:int8"]["size_bytes"] <= 0.3 * fp32_size, arts["tflite:int8"]["size_bytes"] / fp32_size
    for token in ("tflite:int8", "onnx:int8"):
        assert arts[token]["parity"]["top1_agreement"] >= 0.9, (token, arts[token]["parity"])
    assert inspect_model(d / "run_per_tensor" / arts["tflite:int8"]["path"])["quantization"] == "int8"


def test_manifest_records_every_artifact(mobilenet):
    d, manifest = mobilenet
    on_disk = json.loads((d / "run" / "manifest.json").read_text())
    assert on_disk["artifacts"] == manifest["artifacts"]
    for art in manifest["artifacts"]:
        f = d / "run" / art["path"]
        assert f.stat().st_size == art["size_bytes"] and art["format"] in ("tflite", "onnx")
        assert art["precision"] == art["precision_token"].split(":")[1] and len(art["sha256"]) == 64
    assert manifest["tools"]["tensorflow"] and manifest["source"]["sha256"]
    assert not list((d / "run").glob("*.part"))


def test_lstm_is_fused_in_float_and_int8(lstm):
    d, manifest = lstm
    arts = by_token(manifest)
    assert manifest["conversion"]["route"].startswith("tf_keras bridge")
    assert manifest["conversion"]["bridge_max_abs_diff"] <= 1e-5
    for token in ("tflite:fp32", "tflite:int8"):
        ops = inspect_model(d / "run" / arts[token]["path"])["op_histogram"]
        assert ops.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2 and "WHILE" not in ops, ops
    assert arts["tflite:fp32"]["parity"]["within_tolerance"]
    assert arts["onnx:fp32"]["parity"]["within_tolerance"]
    assert arts["tflite:int8"]["parity"]["max_rel_error"] <= 0.1
    assert inspect_model(d / "run" / arts["tflite:int8"]["path"])["quantization"] == "int8"
    # TFLite has no 16x8 kernel for the fused LSTM: reported by name, the rest still produced.
    failed = {f["token"]: f["error"] for f in manifest["failed"]}
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in failed["tflite:16x8"]
    assert not (d / "run" / "lstm_16x8.tflite").exists()


def test_fused_lstm_state_is_flagged_and_a_stock_interpreter_needs_the_reset(lstm):
    """The fused LSTM keeps state across invoke(); no converter route removes it and keeps the fused op (README)."""
    from ai_edge_litert.interpreter import Interpreter

    d, manifest = lstm
    art = by_token(manifest)["tflite:fp32"]
    report = inspect_model(d / "run" / art["path"])
    assert report["needs_state_reset"] is True and len(report["variable_tensors"]) == 4  # (h, c) per LSTM layer
    assert art["needs_state_reset"] is True
    assert by_token(manifest)["onnx:fp32"]["needs_state_reset"] is False
    # What every Android / iOS / Pi app meets: the second invoke on the same window differs without a reset.
    x = np.load(d / "calib.npz")["x"][:1].astype(np.float32) * 3
    interp = Interpreter(model_path=str(d / "run" / art["path"]))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    runs = []
    for reset in (False, False, True):
        if reset:
            interp.reset_all_variables()
        interp.set_tensor(inp, x)
        interp.invoke()
        runs.append(interp.get_tensor(out).copy())
    assert np.abs(runs[1] - runs[0]).max() > 1e-4  # stale state from the first call
    assert np.array_equal(runs[2], runs[0])  # reset_all_variables() restores stateless Keras semantics


def test_autoencoder_every_output(autoencoder):
    _, _, manifest = autoencoder
    arts = by_token(manifest)
    assert manifest["failed"] == [] and manifest["conversion"]["task"] == "autoencoder"
    for token in ("tflite:fp32", "tflite:fp16", "onnx:fp32"):
        assert arts[token]["parity"]["within_tolerance"], token
    # Standardized features have heavy tails: the max error sits on rare outliers, so bound the mean.
    for token in ("tflite:dynamic", "tflite:int8", "tflite:16x8", "onnx:int8"):
        assert arts[token]["parity"]["mean_rel_error"] <= 0.1, (token, arts[token]["parity"])


def test_warm_rerun_reuses_everything(autoencoder):
    d, path, first = autoencoder
    again = convert(path, d / "run", to=ALL, calib=d / "calib.npy")
    assert all(a["reused"] for a in again["artifacts"])
    assert [a["sha256"] for a in again["artifacts"]] == [a["sha256"] for a in first["artifacts"]]


def test_a_crashing_converter_names_the_artifact_and_the_rest_is_produced(autoencoder, tmp_path, monkeypatch):
    _, path, _ = autoencoder
    monkeypatch.setenv("EDGEKIT_CRASH_ON", "tflite:fp16")
    manifest = convert(path, tmp_path / "run", to="tflite:fp32,tflite:fp16,onnx:fp32")
    assert [f["token"] for f in manifest["failed"]] == ["tflite:fp16"]
    assert "crashed (signal SIGSEGV)" in manifest["failed"][0]["error"]
    assert sorted(by_token(manifest)) == ["onnx:fp32", "tflite:fp32"]
    assert not list((tmp_path / "run").glob("*fp16*"))


def test_cli_json_and_exit_codes(autoencoder, tmp_path, monkeypatch):
    _, path, _ = autoencoder
    res = run_cli("convert", str(path), "--out", str(tmp_path / "cli"), "--to", "tflite:fp32", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["artifacts"][0]["path"] == "ae_fp32.tflite"
    monkeypatch.setenv("EDGEKIT_CRASH_ON", "onnx:fp32")
    res = run_cli("convert", str(path), "--out", str(tmp_path / "crash"), "--to", "tflite:fp32,onnx:fp32")
    assert res.returncode == 3 and "onnx:fp32: the converter process crashed" in res.stderr, res.stderr
    assert (tmp_path / "crash" / "ae_fp32.tflite").is_file() and not (tmp_path / "crash" / "ae_fp32.onnx").exists()


def test_lstm_warm_rerun_remembers_the_16x8_failure(lstm):
    d, first = lstm
    again = convert(d / "lstm.keras", d / "run", to=ALL, calib=d / "calib.npz")
    assert all(a["reused"] for a in again["artifacts"])
    assert again["failed"] == first["failed"]

"""``edgekit convert --to edgetpu`` on keras.applications models it was not designed for, and its bad input.

Where ``edgetpu_compiler`` is absent (every CI machine: it is an x86-64 package from Coral's own repository),
the command must stop after the full-integer model and its pre-flight, say "compiler unavailable", exit 3
and write no ``*_edgetpu.tflite``. Where it is present, the compiled file must hold ``edgetpu-custom-op`` and the
compiler's CPU-op count must equal the pre-flight's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.formats.tflite import read_tflite
from edgekit.inspection import inspect_model
from edgekit.runtime import targets
from tests import keras_models
from tests.helpers import by_token, run_cli


@pytest.fixture(scope="module")
def applications(tmp_path_factory) -> dict[str, Path]:
    """MobileNetV2 and MobileNetV3Small (random init, trained two epochs on digits at 32 px) and calibration data."""
    root = tmp_path_factory.mktemp("applications")
    paths = {}
    for family in ("MobileNetV2", "MobileNetV3Small"):
        paths[family], x = keras_models.application_classifier(root / f"{family}.keras", family)
    np.save(root / "calib.npy", x[:64])
    paths["calib"] = root / "calib.npy"
    return paths


def _convert(source: Path, out: Path, *extra: str) -> tuple[int, dict, str]:
    r = run_cli("convert", str(source), "--out", str(out), "--json", *extra, timeout=900)
    manifest = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, manifest, r.stderr


def _check_compile_outcome(code: int, manifest: dict, stderr: str, out: Path) -> None:
    preflight = manifest["edgetpu"]["preflight"]
    if targets.edgetpu_compiler().available:
        assert code == 0, stderr
        compiled = by_token(manifest)["edgetpu"]
        assert read_tflite(out / compiled["path"]).edgetpu_compiled
        assert manifest["edgetpu"]["compiler"]["ops_on_cpu"] == preflight["ops_cpu"]
    else:
        assert code == 3
        assert "compiler unavailable: edgetpu_compiler not on PATH" in stderr
        assert manifest["failed"][0]["token"] == "edgetpu" and manifest["failed"][0]["unavailable"] is True
        assert "edgetpu" not in by_token(manifest) and not list(out.glob("*_edgetpu.tflite"))


@pytest.mark.slow
def test_mobilenet_v2_maps_entirely(applications, tmp_path):
    out = tmp_path / "v2"
    code, manifest, stderr = _convert(applications["MobileNetV2"], out, "--to", "edgetpu",
                                      "--calib", str(applications["calib"]))  # fmt: skip
    int8 = by_token(manifest)["tflite:int8"]
    assert int8["verdict"] == "pass" and int8["inputs"][0]["dtype"] == "int8"
    assert inspect_model(out / int8["path"])["quantization"] == "int8"
    preflight = manifest["edgetpu"]["preflight"]
    assert preflight["blockers"] == [] and preflight["ops_cpu"] == 0 and preflight["ops_mapped"] > 60
    memory = inspect_model(out / int8["path"])["memory"]
    assert preflight["param_bytes_on_chip"] == memory["param_bytes"] and preflight["param_bytes_off_chip"] == 0
    _check_compile_outcome(code, manifest, stderr, out)


@pytest.mark.slow
def test_mobilenet_v3_hard_swish_cuts_the_segment(applications, tmp_path):
    """MobileNetV3's HARD_SWISH is not in Coral's op table (google-coral/edgetpu#272): the segment ends at the
    first one, and everything after it runs on the CPU."""
    out = tmp_path / "v3"
    code, manifest, stderr = _convert(applications["MobileNetV3Small"], out, "--to", "edgetpu",
                                      "--calib", str(applications["calib"]), "--int8-io", "uint8")  # fmt: skip
    int8 = by_token(manifest)["tflite:int8"]
    assert int8["inputs"][0]["dtype"] == "uint8"
    preflight = manifest["edgetpu"]["preflight"]
    first = preflight["first_cpu_op_index"]
    assert preflight["cpu_ops"][0] == "HARD_SWISH" and preflight["ops_mapped"] == first
    assert preflight["reasons"][0]["reason"] == "HARD_SWISH is not supported by the Edge TPU"
    assert preflight["ops_cpu"] == len(read_tflite(out / int8["path"]).subgraphs[0].ops) - first
    _check_compile_outcome(code, manifest, stderr, out)


@pytest.mark.slow
def test_float_io_int8_model_keeps_its_conversions_on_the_cpu(applications, tmp_path):
    """An int8 model with float inputs/outputs: the input QUANTIZE and the output DEQUANTIZE stay on the CPU around
    one Edge TPU segment (as in compiled float-I/O models: QUANTIZE, edgetpu-custom-op, DEQUANTIZE)."""
    code, manifest, _ = _convert(applications["MobileNetV2"], tmp_path / "f", "--to", "tflite:int8",
                                 "--calib", str(applications["calib"]), "--int8-io", "float32")  # fmt: skip
    assert code == 0
    tpu = inspect_model(tmp_path / "f" / by_token(manifest)["tflite:int8"]["path"], target="edgetpu")["edgetpu"]
    assert tpu["cpu_ops"] == ["QUANTIZE", "DEQUANTIZE"] and tpu["first_cpu_op_index"] == 0


def test_coral_tflite_is_compiled_or_stops_at_preflight(coral, tmp_path):
    out = tmp_path / "coral"
    code, manifest, stderr = _convert(coral / "mobilenet_v2_1.0_224_quant.tflite", out, "--to", "edgetpu")
    assert manifest["edgetpu"]["preflight"]["ops_cpu"] == 0
    _check_compile_outcome(code, manifest, stderr, out)


@pytest.mark.slow
def test_bad_input_for_the_edge_tpu(applications, coral, tmp_path):
    """One line, exit 2, nothing written: float model, compiled model, dynamic shape, no calibration, float I/O."""
    code, manifest, _ = _convert(applications["MobileNetV2"], tmp_path / "fp32", "--to", "tflite:fp32")
    assert code == 0
    fp32 = tmp_path / "fp32" / by_token(manifest)["tflite:fp32"]["path"]
    dynamic = tmp_path / "dynamic.tflite"
    dynamic.write_bytes(_dynamic_batch_int8())
    cases = [
        ((str(fp32), "--to", "edgetpu"), "not fully 8-bit quantized (float32)", "--to edgetpu --calib"),
        ((str(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"), "--to", "edgetpu"), "already compiled", ""),
        ((str(dynamic), "--to", "edgetpu"), "tensor 'serving_default_x:0' has a dynamic shape [-1, 8]", ""),
        ((str(applications["MobileNetV2"]), "--to", "edgetpu"), "needs a fully integer (int8) model", "--calib"),
        (
            (
                str(applications["MobileNetV2"]),
                "--to",
                "edgetpu",
                "--calib",
                str(applications["calib"]),
                "--int8-io",
                "float32",
            ),
            "needs integer inputs and outputs",
            "",
        ),
        ((str(coral / "mobilenet_v1_0.25_128_quant.tflite"), "--to", "tflite:fp32"), "can only be compiled", ""),
    ]
    for args, message, hint in cases:
        out = tmp_path / "bad"
        r = run_cli("convert", *args, "--out", str(out))
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, (args, r.stderr)
        assert len(lines) == 1 and message in lines[0] and hint in lines[0], (args, r.stderr)
        assert not out.exists()
    budget = run_cli("inspect", str(coral / "mobilenet_v1_0.25_128_quant.tflite"), "--ram-budget", "12 parsecs")
    assert budget.returncode == 2 and "cannot read '12 parsecs' as a size" in budget.stderr


def _dynamic_batch_int8() -> bytes:
    """A full-int8 TFLite model whose batch dimension is unknown (-1): what the TFLite converter gives by default."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((8,), name="x"), tf.keras.layers.Dense(4)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.random.default_rng(i).random((1, 8), np.float32)] for i in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())

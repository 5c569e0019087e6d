"""`edgekit inspect` on the real Coral models and on ONNX graphs built with the onnx package."""

from __future__ import annotations

import collections
import json

import numpy as np
import onnx
import pytest

from edgekit.inspection import inspect_model
from tests.helpers import gemm_model, run_cli


def test_mobilenet_v1_report(coral):
    r = inspect_model(coral / "mobilenet_v1_0.25_128_quant.tflite")
    assert r["format"] == "tflite"
    assert r["ops_total"] == 31
    assert r["op_histogram"]["CONV_2D"] == 15 and r["op_histogram"]["DEPTHWISE_CONV_2D"] == 13
    assert r["quantization"] == "uint8"
    assert r["edgetpu_compiled"] is False
    assert r["inputs"][0]["shape"] == [1, 128, 128, 3] and r["inputs"][0]["dtype"] == "uint8"
    assert r["inputs"][0]["quantization"] == {"scale": 0.0078125, "zero_point": 128}
    assert r["metadata"]["min_runtime_version"] == "1.5.0"
    # MobileNet v1 0.25/128: 0.47 M parameters and 14 M MACs in the paper's table.
    assert 0.45e6 < r["params"] < 0.49e6
    assert abs(r["macs"] - 14e6) / 14e6 < 0.05


def test_mobilenet_v2_macs_match_the_paper(coral):
    r = inspect_model(coral / "mobilenet_v2_1.0_224_quant.tflite")
    assert abs(r["params"] - 3.47e6) / 3.47e6 < 0.02
    assert abs(r["macs"] - 300e6) / 300e6 < 0.02
    assert r["outputs"][0]["shape"] == [1, 1001]


@pytest.mark.parametrize(
    ("name", "cpu_ops"),
    [("mobilenet_v1_0.25_128_quant", 0), ("keras_lstm_mnist_ptq", 0), ("deeplabv3_mnv2_dm05_pascal_quant", 8)],
)
def test_edgetpu_twin_is_detected(coral, name, cpu_ops):
    cpu = inspect_model(coral / f"{name}.tflite")
    tpu = inspect_model(coral / f"{name}_edgetpu.tflite")
    assert cpu["edgetpu_compiled"] is False and cpu["edgetpu"] is None
    assert tpu["edgetpu_compiled"] is True
    assert tpu["op_histogram"]["CUSTOM:edgetpu-custom-op"] == 1
    assert tpu["edgetpu"]["compiled"] is True and tpu["edgetpu"]["ops_cpu"] == cpu_ops


def test_int8_lstm_is_fused_and_int8(coral):
    r = inspect_model(coral / "keras_lstm_mnist_ptq.tflite")
    assert r["op_histogram"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1
    assert "WHILE" not in r["op_histogram"]
    assert r["quantization"] == "int8"
    assert r["signatures"] == {"serving_default": {"inputs": ["x"], "outputs": ["output_0"]}}
    assert [t["name"] for t in r["inputs"]] == ["x"] and [t["name"] for t in r["outputs"]] == ["output_0"]
    # the fused LSTM's state persists across invoke(): flagged for apps that load the file themselves
    assert r["needs_state_reset"] is True and len(r["variable_tensors"]) == 2
    assert inspect_model(coral / "mobilenet_v1_0.25_128_quant.tflite")["needs_state_reset"] is False


def test_custom_ops_are_named(coral):
    r = inspect_model(coral / "posenet_mobilenet_v1_075_353_481_16_quant_decoder.tflite")
    assert r["op_histogram"]["CUSTOM:PosenetDecoderOp"] == 1
    assert len(r["outputs"]) == 4


def test_onnx_report_agrees_with_the_onnx_package(tmp_path):
    path = tmp_path / "gemm.onnx"
    gemm_model(path)
    r = inspect_model(path)
    ref = onnx.load(path)
    assert r["op_histogram"] == dict(collections.Counter(n.op_type for n in ref.graph.node))
    assert r["params"] == sum(int(np.prod(t.dims)) for t in ref.graph.initializer) == 15
    assert r["inputs"][0]["shape"] == ["batch", 4]
    assert r["quantization"] == "float32"
    assert r["metadata"] == {"labels": "a,b,c"}
    assert r["opsets"] == {"ai.onnx": 17}


def test_onnx_qdq_is_int8(tmp_path):
    path = tmp_path / "qdq.onnx"
    gemm_model(path, quantized=True)
    assert inspect_model(path)["quantization"] == "int8"


def test_cli_json_has_the_documented_keys(coral):
    res = run_cli("inspect", str(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    for key in ("format", "size_bytes", "inputs", "outputs", "ops_total", "op_histogram", "params", "quantization"):
        assert key in r
    assert r["edgetpu_compiled"] is True
    assert r["size_bytes"] == (coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite").stat().st_size


def test_cli_table_output(coral):
    res = run_cli("inspect", str(coral / "mobilenet_v1_0.25_128_quant.tflite"))
    assert res.returncode == 0, res.stderr
    assert "DEPTHWISE_CONV_2D" in res.stdout and "uint8" in res.stdout and "31 (" in res.stdout

"""`edgekit bench` on real models: the figures are consistent and targets are reported honestly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.runtime import targets
from tests.helpers import gemm_model, run_cli


def _bench(*args: str) -> dict:
    res = run_cli("bench", *args, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_latency_figures_are_ordered(coral):
    r = _bench(str(coral / "mobilenet_v1_0.25_128_quant.tflite"), "--runs", "60", "--threads", "1")
    lat = r["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert r["throughput_per_s"] == pytest.approx(1000 / lat["mean"], rel=0.01)
    assert r["target_requested"] == r["target_used"] == "cpu" and r["unavailable_reason"] is None
    assert r["threads"] == 1 and r["runs"] == 60 and r["init_ms"] > 0 and r["peak_rss_mb"] > 10


def test_batch_over_fixed_batch_model(coral):
    r = _bench(str(coral / "keras_lstm_mnist_ptq.tflite"), "--runs", "20", "--batch", "4")
    assert r["batch"] == 4
    assert r["throughput_per_s"] == pytest.approx(4000 / r["latency_ms"]["mean"], rel=0.01)


def test_input_file(coral, tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (2, 28, 28)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    r = _bench(str(coral / "keras_lstm_mnist_ptq.tflite"), "--runs", "5", "--input", str(tmp_path / "x.npy"))
    assert r["batch"] == 2 and r["input"].endswith("x.npy")


def test_onnx_bench(tmp_path):
    gemm_model(tmp_path / "g.onnx")
    r = _bench(str(tmp_path / "g.onnx"), "--runs", "10", "--batch", "8")
    assert r["format"] == "onnx" and r["backend"] == "onnxruntime" and r["batch"] == 8


@pytest.mark.skipif(targets.litert_gpu().available, reason="a GPU is present; device_tests/ cover it")
def test_gpu_request_falls_back_to_cpu_and_says_why(coral):
    res = run_cli(
        "bench", str(coral / "mobilenet_v1_0.25_128_quant.tflite"), "--target", "gpu", "--runs", "5", "--json"
    )
    assert res.returncode == 0
    r = json.loads(res.stdout)
    assert r["target_requested"] == "gpu" and r["target_used"] == "cpu"
    assert "No adapters found" in r["unavailable_reason"]
    assert "measured on cpu instead" in res.stderr


@pytest.mark.skipif(targets.edgetpu_runtime().available, reason="an Edge TPU runtime is present")
def test_edgetpu_compiled_model_without_edgetpu_is_refused(coral):
    res = run_cli("bench", str(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"), "--target", "edgetpu")
    assert res.returncode == 2
    assert "edgetpu-custom-op" in res.stderr and "libedgetpu.so.1" in res.stderr

"""Run real models on the GPU and the Edge TPU where they exist; skip with the reason where they do not."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.runtime import targets


def _require(status: targets.Availability, what: str) -> None:
    if not status.available:
        pytest.skip(f"{what} unavailable: {status.reason}")


def _images(coral, size: int) -> np.ndarray:
    from PIL import Image

    paths = sorted((coral / "images").glob("*.bmp"))
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size)), np.float32) for p in paths])


def test_litert_gpu_agrees_with_the_cpu(coral):
    """A float model on LiteRT's GPU accelerator gives the CPU's answer (measured 4e-7 on an H100)."""
    _require(targets.litert_gpu(), "gpu")
    model = coral / "mobilenet_v2_1.0_224_quant.tflite"
    x = _images(coral, 224)
    cpu = edgekit.load(model).run(x)[0]
    gpu = edgekit.load(model, target="gpu").run(x)[0]
    assert np.array_equal(cpu.argmax(1), gpu.argmax(1))
    assert np.abs(cpu - gpu).max() <= 0.05 * np.abs(cpu).max()


def test_edgetpu_compiled_model_classifies_the_photos(coral):
    """The Edge-TPU-compiled MobileNetV1 on a real Coral: the same top-1 as its CPU twin on the three photos."""
    _require(targets.edgetpu_runtime(), "edgetpu")
    x = _images(coral, 128)
    tpu = edgekit.load(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", target="edgetpu").run(x)[0]
    cpu = edgekit.load(coral / "mobilenet_v1_0.25_128_quant.tflite").run(x)[0]
    assert np.array_equal(tpu.argmax(1), cpu.argmax(1))


def test_onnxruntime_gpu_provider_agrees_with_the_cpu(tmp_path):
    """ONNX Runtime's GPU provider (onnxruntime-gpu) on a small real model gives the CPU's answer."""
    _require(targets.onnxruntime_gpu(), "gpu (onnxruntime)")
    helper = pytest.importorskip("onnx.helper", reason="the onnx package builds the test model")
    from onnx import TensorProto, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    path = tmp_path / "matmul.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    )
    x = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    cpu = edgekit.load(path).run(x)[0]
    gpu = edgekit.load(path, target="gpu").run(x)[0]
    assert np.abs(cpu - gpu).max() <= 1e-4


def test_validate_measures_the_gpu_cell_beside_the_cpu(coral, tmp_path):
    """``edgekit validate --targets cpu,gpu`` on a real ImageNet model: the GPU cell is measured on the GPU,
    gives the CPU cell's top-1 on the photos, and the report says whether LiteRT took the whole graph."""
    _require(targets.litert_gpu(), "gpu")
    from edgekit.validate import validate

    x = _images(coral, 224)
    cpu_top1 = edgekit.load(coral / "mobilenet_v2_1.0_224_quant.tflite").run(x)[0].argmax(1)
    np.savez(tmp_path / "photos.npz", x=x, y=cpu_top1)
    report = validate([coral / "mobilenet_v2_1.0_224_quant.tflite"], data=tmp_path / "photos.npz",
                      targets=["cpu", "gpu"], task="classifier", out=tmp_path / "report")  # fmt: skip
    cells = {r["target_requested"]: r for r in report["results"]}
    assert cells["gpu"]["status"] == "measured" and cells["gpu"]["target_used"] == "gpu", cells["gpu"]
    assert "fully_accelerated" in cells["gpu"]
    output = next(iter(report["outputs"]))
    assert cells["gpu"]["metrics"][output]["accuracy"] == cells["cpu"]["metrics"][output]["accuracy"] == 1.0

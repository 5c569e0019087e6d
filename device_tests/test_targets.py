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
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths])  # uint8 pixels


def test_litert_gpu_agrees_with_the_cpu(coral):
    """A float model on LiteRT's GPU accelerator gives the CPU's answer (measured 4e-7 on an H100)."""
    _require(targets.litert_gpu(), "gpu")
    model = coral / "mobilenet_v2_1.0_224_quant.tflite"
    x = _images(coral, 224)
    cpu = edgekit.load(model).run(x)[0]
    gpu = edgekit.load(model, target="gpu").run(x)[0]
    assert np.array_equal(cpu.argmax(1), gpu.argmax(1))
    assert np.abs(cpu - gpu).max() <= 0.05 * np.abs(cpu).max()
    labels = (coral / "imagenet_labels.txt").read_text().splitlines()
    assert [labels[i] for i in gpu.argmax(1)] == ["chickadee", "Egyptian cat", "military uniform"]


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
    from edgekit.stages.validate import validate

    x = _images(coral, 224)
    cpu_top1 = edgekit.load(coral / "mobilenet_v2_1.0_224_quant.tflite").run(x)[0].argmax(1)
    np.savez(tmp_path / "photos.npz", x=x, y=cpu_top1)
    report = validate([coral / "mobilenet_v2_1.0_224_quant.tflite"], data=tmp_path / "photos.npz",
                      targets=["cpu", "gpu"], task="classifier", out=tmp_path / "report")  # fmt: skip
    cells = {r["target_requested"]: r for r in report["results"]}
    assert cells["gpu"]["status"] == "measured", cells["gpu"]
    assert cells["gpu"]["target_used"] == ("gpu" if cells["gpu"]["fully_accelerated"] else "gpu+cpu")
    output = next(iter(report["outputs"]))
    assert cells["gpu"]["metrics"][output]["accuracy"] == cells["cpu"]["metrics"][output]["accuracy"] == 1.0


def test_litert_gpu_says_where_each_model_ran(coral):
    """On the GPU, a model LiteRT fully accelerates reports ``target_used: gpu``; the fused int8 LSTM (no GPU
    kernel) reports ``gpu+cpu`` with the reason, and still gives the CPU's answer."""
    _require(targets.litert_gpu(), "gpu")
    lstm = coral / "keras_lstm_mnist_ptq.tflite"
    x = np.random.default_rng(0).integers(0, 255, (1, 28, 28)).astype(np.uint8)
    with edgekit.load(lstm, target="gpu") as runner:
        assert runner.fully_accelerated is False and runner.target_used == "gpu+cpu"
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in runner.fallback_reason
        gpu = runner.run(x)[0]
    assert np.array_equal(gpu.argmax(1), edgekit.load(lstm).run(x)[0].argmax(1))
    with edgekit.load(coral / "mobilenet_v2_1.0_224_quant.tflite", target="gpu") as runner:
        assert runner.target_used == ("gpu" if runner.fully_accelerated else "gpu+cpu")
        assert (runner.fallback_reason is None) == runner.fully_accelerated


def test_bench_gpu_json_is_only_json(coral):
    """``bench --target gpu --json`` on the GPU: LiteRT's native "INFO: Loaded OpenCL library" lines stay off stdout."""
    _require(targets.litert_gpu(), "gpu")
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "bench", str(coral / "mobilenet_v2_1.0_224_quant.tflite"),
         "--target", "gpu", "--runs", "20", "--json"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["target_used"] in ("gpu", "gpu+cpu") and isinstance(result["fully_accelerated"], bool)
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith(("INFO:", "WARNING:"))]


def test_edgetpu_compiler_agrees_with_the_preflight(coral, tmp_path):
    """Where ``edgetpu_compiler`` is installed: compile Coral's CPU models and compare the compiler's own CPU ops
    with the pre-flight's, op by op."""
    _require(targets.edgetpu_compiler(), "edgetpu_compiler")
    from edgekit.formats.tflite import read_tflite
    from edgekit.stages.convert.edgetpu import compile_tflite

    for name in ("mobilenet_v2_1.0_224_quant", "deeplabv3_mnv2_dm05_pascal_quant", "keras_lstm_mnist_ptq"):
        manifest = compile_tflite(coral / f"{name}.tflite", tmp_path / name, to="edgetpu")
        preflight, compiler = manifest["edgetpu"]["preflight"], manifest["edgetpu"]["compiler"]
        compiled = read_tflite(tmp_path / name / manifest["artifacts"][0]["path"])
        left = [op.name for op in compiled.subgraphs[0].ops if op.name != "CUSTOM:edgetpu-custom-op"]
        assert compiler["ops_on_cpu"] == preflight["ops_cpu"] and left == preflight["cpu_ops"], name


def test_edgetpu_split_model_reports_its_cpu_part(coral):
    """DeepLab compiled with 8 ops left on the CPU runs as ``edgetpu+cpu`` and names them."""
    _require(targets.edgetpu_runtime(), "edgetpu")
    with edgekit.load(coral / "deeplabv3_mnv2_dm05_pascal_quant_edgetpu.tflite", target="edgetpu") as runner:
        assert runner.target_used == "edgetpu+cpu" and "8 op(s)" in runner.fallback_reason
        mask = runner.run(np.zeros((1, 513, 513, 3), np.uint8))[0]
    assert mask.shape == (1, 513, 513)


def test_pi_class_cpu_classifies_the_photos_within_its_memory(coral):
    """On a Raspberry Pi-class ARM CPU, the runtime lane alone classifies Coral's photos correctly, and the
    model's planned memory fits a 512 MB Pi with room to spare."""
    import platform

    if platform.machine() not in ("aarch64", "armv7l", "arm64"):
        pytest.skip(f"raspberry pi-class cpu unavailable: this machine is {platform.machine()}")
    from edgekit.common.timing import peak_rss_mb
    from edgekit.inspection import inspect_model

    labels = (coral / "imagenet_labels.txt").read_text().splitlines()
    scores = edgekit.load(coral / "mobilenet_v2_1.0_224_quant.tflite", threads=4).run(_images(coral, 224))[0]
    assert [labels[i] for i in scores.argmax(1)] == ["chickadee", "Egyptian cat", "military uniform"]
    report = inspect_model(coral / "mobilenet_v2_1.0_224_quant.tflite", ram_budget=512 << 20)
    assert report["ram_budget"]["fits"] and report["memory"]["total_bytes"] < 16 << 20
    assert peak_rss_mb() < 300

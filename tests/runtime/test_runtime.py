"""`edgekit.load`: real LiteRT and ONNX Runtime on real models and photos."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import edgekit
from edgekit.errors import InferenceError, InputError, ModelFormatError, TargetUnavailableError
from edgekit.runtime import targets
from edgekit.runtime.isolation import probe_in_child
from tests.fuzz.harness import REGRESSIONS
from tests.helpers import gemm_model

PHOTOS = {"cat": "Egyptian cat", "bird": "chickadee", "grace_hopper": "military uniform"}


def _photo(coral, name: str, size: int) -> np.ndarray:
    image = Image.open(coral / "images" / f"{name}.bmp").convert("RGB").resize((size, size))
    return np.asarray(image)[None]


def test_mobilenet_v2_classifies_the_photos(coral):
    labels = (coral / "imagenet_labels.txt").read_text().splitlines()
    runner = edgekit.load(coral / "mobilenet_v2_1.0_224_quant.tflite", threads=2)
    assert runner.backend == "ai-edge-litert" and runner.threads == 2
    batch = np.concatenate([_photo(coral, n, 224) for n in PHOTOS])
    probs = runner.run(batch)[0]
    assert probs.shape == (3, 1001) and probs.dtype == np.float32
    assert [labels[i] for i in probs.argmax(1)] == list(PHOTOS.values())
    assert np.all(probs.max(1) > 0.5)


def test_float_input_is_quantized_like_the_raw_uint8(coral):
    runner = edgekit.load(coral / "mobilenet_v1_0.25_128_quant.tflite")
    raw = _photo(coral, "cat", 128)
    spec = runner.inputs[0]
    as_float = (raw.astype(np.float32) - spec.zero_point) * spec.scale  # the values the uint8 codes stand for
    np.testing.assert_array_equal(runner.run(raw)[0], runner.run(as_float)[0])
    q = runner.run(raw, dequantize_outputs=False)[0]
    assert q.dtype == np.uint8
    np.testing.assert_allclose(runner.run(raw)[0], q.astype(np.float32) * runner.outputs[0].scale)


def test_batch_over_a_fixed_batch_of_one_matches_row_by_row(coral):
    runner = edgekit.load(coral / "mobilenet_v1_0.25_128_quant.tflite")
    batch = np.concatenate([_photo(coral, n, 128) for n in PHOTOS])
    together = runner.run(batch)[0]
    one_by_one = np.concatenate([runner.run(batch[i : i + 1])[0] for i in range(3)])
    np.testing.assert_array_equal(together, one_by_one)


def test_wrong_shape_names_the_expected_shape(coral):
    runner = edgekit.load(coral / "mobilenet_v1_0.25_128_quant.tflite")
    with pytest.raises(InputError, match=r"expects shape \(1, 128, 128, 3\), got \(1, 64, 64, 3\)"):
        runner.run(np.zeros((1, 64, 64, 3), np.uint8))


def test_onnx_runner_matches_numpy(tmp_path):
    import onnx
    from onnx import numpy_helper

    path = tmp_path / "gemm.onnx"
    gemm_model(path)
    ref = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    runner = edgekit.load(path, threads=1)
    assert runner.inputs[0].shape == (None, 4)
    got = runner.run({"x": x})[0]
    np.testing.assert_allclose(got, np.maximum(x @ ref["w"] + ref["b"], 0), atol=1e-5)


def test_invoke_failure_is_an_inference_error(coral):
    with pytest.raises(InferenceError, match="fake-op-double"):
        edgekit.load(coral / "model_invoking_error.tflite").run(np.zeros((1, 3), np.uint8))


def test_edgetpu_model_on_cpu_says_what_it_needs(coral):
    with pytest.raises(InferenceError, match="edgetpu-custom-op"):
        edgekit.load(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")


@pytest.mark.skipif(targets.litert_gpu().available, reason="a GPU is present; device_tests/ cover it")
def test_gpu_target_is_unavailable_with_the_runtime_reason(coral):
    with pytest.raises(TargetUnavailableError, match="No adapters found"):
        edgekit.load(coral / "mobilenet_v1_0.25_128_quant.tflite", target="gpu")


@pytest.mark.skipif(targets.edgetpu_runtime().available, reason="an Edge TPU runtime is present")
def test_edgetpu_target_is_unavailable_without_libedgetpu(coral):
    with pytest.raises(TargetUnavailableError, match=r"libedgetpu\.so\.1"):
        edgekit.load(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", target="edgetpu")


def test_load_isolated_runs_the_model_once_in_a_child_first(coral):
    """Issue 21: `load(isolate=True)` loads and runs the model in a forked child before this process does: the same
    outputs after; a file the reader refuses never reaches the child (kept fuzz case: a uint8 depthwise conv without
    its bias, which crashed LiteRT). The crash path itself is `probe_in_child`'s doctest (a real SIGSEGV)."""
    model = coral / "mobilenet_v1_0.25_128_quant.tflite"
    image = np.random.default_rng(0).integers(0, 256, (1, 128, 128, 3)).astype(np.uint8)
    assert np.array_equal(edgekit.load(model, isolate=True).run(image)[0], edgekit.load(model).run(image)[0])
    with pytest.raises(ModelFormatError, match="DEPTHWISE_CONV_2D"):
        edgekit.load(REGRESSIONS / "tflite-00893cf59d7f" / "files" / "model.tflite", isolate=True)
    with pytest.raises(InferenceError, match=r"crashed on it \(SIGABRT\)"):
        probe_in_child(os.abort, "m.tflite")

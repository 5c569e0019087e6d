"""Outputs decoded for the tasks people deploy (issue 28): segmentation, detection, pose; drawn with --draw.

Coral's DeepLab (PASCAL) on Coral's photos; a detector with TFLite's detection post-processing op built the way
TF's object-detection export builds one; a MoveNet-shaped pose head converted with ``--output-kind keypoints``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_clean_failure, run_cli

PASCAL = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tv",
]


def _deeplab_ids(model: Path, photo: Path) -> np.ndarray:
    """Coral's DeepLab run with LiteRT directly, its class-id map resized (nearest) to the photo: the reference."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    interp = Interpreter(str(model))
    interp.allocate_tensors()
    with Image.open(photo) as image:
        size, pixels = image.size, np.asarray(image.convert("RGB").resize((513, 513), Image.BILINEAR))
    interp.set_tensor(interp.get_input_details()[0]["index"], pixels[None].astype(np.uint8))
    interp.invoke()
    ids = interp.get_tensor(interp.get_output_details()[0]["index"])[0]
    return np.asarray(Image.fromarray(ids.astype(np.uint8)).resize(size, Image.NEAREST))


def test_deeplab_bundle_gives_a_mask_per_photo(coral, tmp_path):
    from PIL import Image

    model = coral / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    (tmp_path / "pascal.txt").write_text("\n".join(PASCAL) + "\n")
    res = run_cli("bundle", str(model), "--platform", "rpi", "--labels", str(tmp_path / "pascal.txt"),
                  "--out", str(tmp_path / "b"), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    assert manifest["task"] == "segmenter" and manifest["contract"]["outputs"][0]["kind"] == "segmentation"
    assert manifest["inputs"][0]["preprocessing"]["feed"] == "uint8_pixels"

    photos = sorted((coral / "images").glob("*.bmp"))
    res = run_cli("predict", str(tmp_path / "b"), *map(str, photos), "--json", "--out-dir", str(tmp_path / "masks"),
                  "--draw", str(tmp_path / "drawn"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    expected = {"bird.bmp": "bird", "cat.bmp": "cat", "grace_hopper.bmp": "person"}
    for photo, result in zip(photos, json.loads(res.stdout), strict=True):
        seg = result["segmentation"]
        found = {c["label"]: c["share"] for c in seg["classes"]}
        assert found.get(expected[photo.name], 0) >= 0.15, (photo.name, found)  # the subject, not background only
        with Image.open(seg["mask"]) as mask, Image.open(photo) as image:
            assert mask.size == image.size
            ids = np.asarray(mask)
        reference = _deeplab_ids(model, photo)
        subject = PASCAL.index(expected[photo.name])
        a, b = ids == subject, reference == subject
        assert (a & b).sum() / (a | b).sum() >= 0.99  # decoding adds nothing to the model's own answer
        assert Path(result["drawn"]).is_file()

    ran = subprocess.run([sys.executable, str(tmp_path / "b" / "run.py"), str(photos[0]), "--json", "--out-dir",
                          str(tmp_path / "run_masks")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)[0]["segmentation"]["classes"] == json.loads(res.stdout)[0]["segmentation"]["classes"]


@pytest.mark.slow
def test_a_detector_with_the_postprocessing_op_gives_labelled_boxes(tmp_path):
    from PIL import Image

    from tests.keras_models import ssd_quadrants

    model = ssd_quadrants(tmp_path)
    (tmp_path / "labels.txt").write_text("red\ngreen\n")
    pixels = np.zeros((128, 96, 3), np.uint8)
    pixels[:64, :48, 0] = 255  # red top-left quadrant
    pixels[64:, 48:, 1] = 200  # green bottom-right
    Image.fromarray(pixels).save(tmp_path / "quads.png")

    res = run_cli("bundle", str(model), "--platform", "rpi", "--labels", str(tmp_path / "labels.txt"),
                  "--out", str(tmp_path / "b"))  # fmt: skip
    assert_clean_failure(res, "nothing says what range", "--mean/--std")  # a float image of unknown range: asked
    res = run_cli("bundle", str(model), "--platform", "rpi", "--labels", str(tmp_path / "labels.txt"),
                  "--out", str(tmp_path / "b"), "--mean", "0,0,0", "--std", "1,1,1", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    post = manifest["postprocessing"]
    assert manifest["task"] == "detector" and {"boxes", "classes", "scores", "count"} <= set(post)

    res = run_cli("predict", str(tmp_path / "b"), str(tmp_path / "quads.png"), "--json", "--draw", str(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)[0]["detections"]
    assert [(d["label"], d["box"]) for d in found] == [("red", [0.0, 0.0, 0.5, 0.5]), ("green", [0.5, 0.5, 1.0, 1.0])]
    assert found[0]["score"] == pytest.approx(1.0, abs=0.01) and found[1]["score"] == pytest.approx(200 / 255, abs=0.01)
    with Image.open(json.loads(res.stdout)[0]["drawn"]) as drawn:
        assert drawn.size == (96, 128)

    raw = run_cli("predict", str(tmp_path / "b"), str(tmp_path / "quads.png"), "--json", "--raw")
    assert raw.returncode == 0, raw.stderr
    assert len(json.loads(raw.stdout)[0]["outputs"]) == 4  # the four tensors as they are


@pytest.mark.slow
def test_a_pose_model_gives_17_named_keypoints(tmp_path):
    import keras
    from PIL import Image

    from edgekit.stages.bundle.app import COCO_KEYPOINTS
    from tests.keras_models import pose_head

    path, x = pose_head(tmp_path / "pose.keras")
    np.save(tmp_path / "calib.npy", x)
    res = run_cli("convert", str(path), "--out", str(tmp_path / "run"), "--to", "tflite:fp32",
                  "--calib", str(tmp_path / "calib.npy"), "--output-kind", "keypoints", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["contract"]["outputs"][0]["kind"] == "keypoints"
    Image.fromarray(x[5].astype(np.uint8)).save(tmp_path / "digit.png")
    res = run_cli("bundle", str(tmp_path / "run"), "--platform", "rpi", "--out", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr
    res = run_cli("predict", str(tmp_path / "b"), str(tmp_path / "digit.png"), "--json")
    assert res.returncode == 0, res.stderr
    points = json.loads(res.stdout)[0]["keypoints"]
    assert [p["name"] for p in points] == list(COCO_KEYPOINTS)
    want = keras.models.load_model(path).predict(x[5:6], verbose=0).reshape(17, 3)
    got = np.array([[p["y"], p["x"], p["score"]] for p in points])
    assert np.abs(got - want).max() <= 1e-4


def test_decoding_flags_that_do_not_fit_are_refused(coral, tmp_path):
    model = coral / "mobilenet_v1_0.25_128_quant.tflite"
    res = run_cli("bundle", str(model), "--platform", "rpi", "--out", str(tmp_path / "b"), "--output-kind", "detection")
    assert_clean_failure(res, "detection", "only output")
    res = run_cli("predict", str(model), str(coral / "images" / "cat.bmp"), "--output-kind", "segmentation")
    assert_clean_failure(res, "segmentation", "not a map")

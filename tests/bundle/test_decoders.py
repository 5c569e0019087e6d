"""The decoders run.py and predict share (issue 28), on outputs whose answer is known: plain box and per-class
score tensors (no post-processing op in the model), keypoints and class-id maps."""

from __future__ import annotations

import numpy as np

from edgekit.stages.bundle.app import COCO_KEYPOINTS, detections, keypoints, segmentation


def test_plain_box_and_score_tensors_are_suppressed_per_class():
    boxes = np.array([[[0.0, 0.0, 0.5, 0.5], [0.02, 0.0, 0.5, 0.52], [0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]]])
    scores = np.array([[[0.9, 0.1], [0.8, 0.1], [0.2, 0.7], [0.1, 0.6]]])  # box 1 overlaps box 0, same class
    post = {"boxes": "b", "scores": "s", "score_threshold": 0.5}
    found = detections({"b": boxes, "s": scores}, post, ["cat", "dog"], 0)
    # box 1 is suppressed (IoU > 0.5 with box 0, both cats); box 3 overlaps box 0 but is a dog: kept
    assert [(d["label"], d["box"]) for d in found] == [
        ("cat", [0.0, 0.0, 0.5, 0.5]), ("dog", [0.5, 0.5, 1.0, 1.0]), ("dog", [0.0, 0.0, 0.5, 0.5]),
    ]  # fmt: skip
    assert [d["score"] for d in found] == [0.9, 0.7, 0.6]


def test_keypoints_are_named_and_read_y_then_x():
    rows = np.stack([np.linspace(0, 1, 17), np.linspace(1, 0, 17), np.full(17, 0.5)], axis=1)[None, None]
    points = keypoints(rows[0])
    assert [p["name"] for p in points] == list(COCO_KEYPOINTS)
    assert (points[0]["y"], points[0]["x"], points[-1]["y"], points[-1]["x"]) == (0.0, 1.0, 1.0, 0.0)


def test_a_class_map_gives_shares_and_a_mask_at_the_photo_size(tmp_path):
    from PIL import Image

    ids = np.zeros((4, 4), np.int64)
    ids[:2, :2] = 3
    Image.new("RGB", (40, 20)).save(tmp_path / "photo.png")
    result = segmentation(ids, ["background", "a", "b", "bird"], tmp_path / "photo.png", tmp_path / "masks")
    assert result["classes"] == [{"label": "background", "index": 0, "share": 0.75},
                                 {"label": "bird", "index": 3, "share": 0.25}]  # fmt: skip
    with Image.open(result["mask"]) as mask:
        assert mask.size == (40, 20) and np.asarray(mask)[0, 0] == 3 and np.asarray(mask)[19, 39] == 0


def test_run_py_pairs_state_as_the_runtime_does():
    """run.py carries its own copy (it has no edgekit): the same state suffixes as edgekit.runtime."""
    from edgekit.runtime.base import STATE_SUFFIXES
    from edgekit.stages.bundle import app

    assert app.STATE_SUFFIXES == STATE_SUFFIXES

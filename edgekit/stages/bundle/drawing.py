"""``predict --draw``: the photo with what the model found drawn on it (boxes, keypoints, a mask, the top class).

People look at detections, poses and masks; they do not read them. Pillow only (runtime lane).

Example:
    >>> draw_result(Path("cat.bmp"), {"top": [{"label": "cat", "score": 0.9}]}, Path("drawn"))  # doctest: +SKIP
    PosixPath('drawn/cat_drawn.png')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError

# Limb pairs of the 17 COCO keypoints (indices into app.COCO_KEYPOINTS).
SKELETON = ((5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14),
            (14, 16), (0, 1), (0, 2), (1, 3), (2, 4))  # fmt: skip
KEYPOINT_SCORE = 0.2  # keypoints below this score are not drawn (MoveNet's own demo uses 0.11-0.3)


def _palette(index: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(index + 7)
    return tuple(int(v) for v in rng.integers(64, 256, 3))  # type: ignore[return-value]


def draw_result(photo: Path, result: dict[str, Any], folder: Path) -> Path:
    """Draw ``result`` (one of ``predict``'s) on ``photo``; write ``<folder>/<stem>_drawn.png`` and return it.

    Example:
        >>> draw_result(Path("rows.csv"), {"values": [1.0]}, Path("drawn"))
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --draw: rows.csv is not a photo (it draws on the images given to predict)
    """
    from PIL import Image, ImageDraw

    if photo.suffix.lower() in (".npy", ".csv"):
        raise InputError(f"--draw: {photo} is not a photo (it draws on the images given to predict)")
    with Image.open(photo) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    if "segmentation" in result and result["segmentation"].get("mask"):
        with Image.open(result["segmentation"]["mask"]) as mask:
            ids = np.asarray(mask.resize(image.size, Image.NEAREST))
        colours = np.zeros((*ids.shape, 3), np.uint8)
        for value in np.unique(ids):
            if value:  # class 0 (background in PASCAL / COCO masks) stays clear
                colours[ids == value] = _palette(int(value))
        image = Image.blend(image, Image.fromarray(colours), 0.45)
    pen = ImageDraw.Draw(image)
    for found in result.get("detections", []):
        ymin, xmin, ymax, xmax = found["box"]
        colour = _palette(found["index"])
        pen.rectangle([xmin * width, ymin * height, xmax * width, ymax * height], outline=colour, width=3)
        pen.text((xmin * width + 4, ymin * height + 2), f"{found['label']} {found['score']:.2f}", fill=colour)
    points = result.get("keypoints", [])
    visible = {i: (p["x"] * width, p["y"] * height) for i, p in enumerate(points)
               if p.get("score", 1.0) >= KEYPOINT_SCORE}  # fmt: skip
    if len(points) == 17:
        for a, b in SKELETON:
            if a in visible and b in visible:
                pen.line([visible[a], visible[b]], fill=(255, 255, 0), width=3)
    for x, y in visible.values():
        pen.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(255, 0, 0))
    if result.get("top"):
        best = result["top"][0]
        pen.text((6, 6), f"{best['label']} {best['score']:.2f}", fill=(255, 255, 255))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{photo.stem}_drawn.png"
    image.save(path)
    return path

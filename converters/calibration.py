"""Representative data for quantization and the held-out sample parity is checked on.

Sources: a folder of images (``image_dataset_from_directory`` layout or flat),
``.npy`` / ``.npz`` (array ``x`` or the first array), a CSV of windows (one
window per row) or of a series (one column per feature, cut into sliding
windows), or a Python callable returning an array. Images are resized to the
model's input size and kept in 0..255: preprocessing (Rescaling) lives inside
the model, so calibration sees exactly what the model sees.

Example:
    >>> x = load_calibration("calib.npz", (None, 20, 3))  # doctest: +SKIP
    >>> x.shape[1:]  # doctest: +SKIP
    (20, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.datasets import IMAGE_SUFFIXES, read_image
from edgekit.errors import InputError
from edgekit.runtime.base import format_shape as _fmt

Shape = tuple[int | None, ...]


def _images(folder: Path, shape: Shape) -> np.ndarray:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: calibration folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(shape) != 4:
        raise InputError(f"{folder}: image calibration needs an image model; the model takes {_fmt(shape)}")
    height, width, channels = shape[1] or 224, shape[2] or 224, shape[3] or 3
    read = (read_image(f, (width, height), "L" if channels == 1 else "RGB") for f in files)
    images = [image for image in read if image is not None]  # unreadable files are skipped; all-unreadable fails
    if not images:
        raise InputError(f"{folder}: none of the {len(files)} image files could be read")
    return np.stack(images)


def _csv(path: Path, shape: Shape) -> np.ndarray:
    try:
        data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2, comments="#")
    except ValueError:
        data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2, skiprows=1)
    per_sample = int(np.prod([d or 1 for d in shape[1:]]))
    if data.shape[1] == per_sample and len(shape) > 2:
        return data.reshape((-1, *shape[1:]))
    if len(shape) == 3 and shape[1] and data.shape[1] == (shape[2] or 1):
        window = shape[1]
        if len(data) < window:
            raise InputError(f"{path}: series has {len(data)} rows, shorter than one window of {window}")
        return np.stack([data[i : i + window] for i in range(len(data) - window + 1)])
    return data


def load_calibration(source: str | Path | Callable[[], np.ndarray], shape: Shape) -> np.ndarray:
    """Load calibration inputs and check them against the model input ``shape``.

    Example:
        >>> load_calibration("missing.npy", (None, 4))
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.npy: calibration data not found
    """
    if callable(source):
        data = np.asarray(source(), dtype=np.float32)
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{source}: calibration data not found")
        if path.is_dir():
            data = _images(path, shape)
        elif path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise InputError(f"{source}: .npz holds no arrays")
                data = z["x"] if "x" in z.files else z[z.files[0]]
        elif path.suffix == ".csv":
            data = _csv(path, shape)
        else:
            raise InputError(f"{source}: calibration data must be an image folder, .npy, .npz or .csv")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 0 or len(data) == 0:
        raise InputError(f"{source}: calibration data is empty")
    want = tuple(shape[1:])
    if data.ndim != len(shape) or any(w is not None and w != g for w, g in zip(want, data.shape[1:], strict=False)):
        raise InputError(
            f"{source}: calibration data has shape {_fmt(data.shape)}, the model expects {_fmt((None, *want))}"
        )
    if not np.all(np.isfinite(data)):
        raise InputError(f"{source}: calibration data contains NaN or infinite values")
    return data


def split_sample(data: np.ndarray, calib_size: int, check_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle once; return (calibration sample, held-out check sample), disjoint where data allows.

    Example:
        >>> c, k = split_sample(np.arange(10.0)[:, None], 6, 4)
        >>> len(c), len(k), len(set(c.ravel()) & set(k.ravel()))
        (6, 4, 0)
    """
    order = np.random.default_rng(seed).permutation(len(data))
    if len(data) >= calib_size + check_size:
        return data[order[:calib_size]], data[order[calib_size : calib_size + check_size]]
    check = max(1, min(check_size, len(data) // 4))
    return data[order[check:]] if len(data) > check else data, data[order[:check]]

"""Images, series and windows read from files: what training, calibration and validation data share.

Example:
    >>> x, y = windows(np.arange(5.0)[:, None], 3)
    >>> x.shape, y.shape
    ((2, 3, 1), (2, 1))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


class Arrays(dict):
    """The arrays of an ``.npz`` (or the one of an ``.npy``, under ``""``) by name, read; ``files`` as ``np.load``'s."""

    @property
    def files(self) -> list[str]:
        return list(self)


def read_arrays(path: str | Path) -> Arrays:
    """Every array of an ``.npy`` / ``.npz``, read now, numbers only: an array of Python objects would need
    unpickling (code from the file), so it is refused in one line like any unreadable file.

    Example:
        >>> read_arrays("missing.npz")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.npz: no such file
    """
    import zipfile

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return Arrays({"": loaded})
        with loaded:
            return Arrays({name: loaded[name] for name in loaded.files})
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise InputError(f"{path}: holds an array of Python objects (dtype object), which edgekit does not "
                             "unpickle: save numeric arrays") from None  # fmt: skip
        raise InputError(f"{path}: not a .npy/.npz array file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a .npy/.npz array file ({exc})") from None


def read_image(path: Path, size: tuple[int, int] | None = None, mode: str = "RGB") -> np.ndarray | None:
    """An image file as float32 (height, width, channels), resized to ``size`` = (width, height) if given;
    None when Pillow cannot read it.

    Example:
        >>> read_image(Path("not_an_image.png")) is None
        True
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            pixels = np.asarray(im if size is None else im.resize(size), np.float32)
    except (UnidentifiedImageError, OSError):
        return None
    return pixels.reshape(*pixels.shape[:2], -1)


def windows(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows of ``window`` steps and the value that follows each.

    Example:
        >>> x, y = windows(np.arange(5.0)[:, None], 3)
        >>> x[:, :, 0].tolist(), y.ravel().tolist()
        ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [3.0, 4.0])
    """
    if len(series) <= window:
        raise InputError(f"the series has {len(series)} steps, fewer than one window of {window} plus a target")
    x = np.stack([series[i : i + window] for i in range(len(series) - window)])
    return x.astype(np.float32), series[window:].astype(np.float32)

"""Representative data for quantization and the held-out sample parity is checked on.

Sources: a folder of images (``image_dataset_from_directory`` layout or flat),
``.npy`` / ``.npz`` (the array named like the input, else ``x``, else the
first; for several inputs one array per input name), a CSV of windows (one
window per row) or of a series (one column per feature, cut into sliding
windows), or a Python callable returning an array. Images are resized to the
model's input size and kept in 0..255: preprocessing (Rescaling) lives inside
the model, so calibration sees exactly what the model sees.

Example:
    >>> feeds = load_calibration("calib.npz", [TensorSpec("window", (None, 20, 3), "float32")])  # doctest: +SKIP
    >>> feeds["window"].shape[1:]  # doctest: +SKIP
    (20, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.common.readers import IMAGE_SUFFIXES, read_arrays, read_image
from edgekit.errors import InputError
from edgekit.runtime.base import format_shape as _fmt
from edgekit.runtime.specs import TensorSpec

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


Feeds = dict[str, np.ndarray]


def _read(source: str | Path | Callable[[], object], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """The raw arrays of ``source`` by input name (not yet checked)."""
    first = specs[0]
    if callable(source):
        data = source()
        return {k: np.asarray(v) for k, v in data.items()} if isinstance(data, dict) else {first.name: np.asarray(data)}
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: calibration data not found")
    single = len(specs) == 1
    if path.suffix == ".npz" and path.is_file():
        z = read_arrays(path)
        if not z.files:
            raise InputError(f"{source}: .npz holds no arrays")
        if not single:
            return {name: z[name] for name in z.files}
        key = first.name if first.name in z.files else "x" if "x" in z.files else z.files[0]
        return {first.name: z[key]}
    if not single:
        names = ", ".join(s.name for s in specs)
        raise InputError(f"{source}: the model has {len(specs)} inputs ({names}); pass an .npz keyed by input name")
    if path.is_dir():
        return {first.name: _images(path, first.shape)}
    if path.suffix == ".npy":
        return {first.name: read_arrays(path)[""]}
    if path.suffix == ".csv":
        return {first.name: _csv(path, first.shape)}
    raise InputError(f"{source}: calibration data must be an image folder, .npy, .npz or .csv")


def _checked(source: object, spec: TensorSpec, data: np.ndarray, several: bool) -> np.ndarray:
    """``data`` as the input's dtype, with its shape, emptiness, finiteness and integrality checked."""
    label = f"{source} [{spec.name}]" if several else str(source)
    if data.dtype == object or not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise InputError(f"{label}: calibration data must be numeric, got dtype {data.dtype}")
    if data.ndim == 0 or len(data) == 0:
        raise InputError(f"{label}: calibration data is empty")
    want = tuple(spec.shape[1:])
    if data.ndim != len(spec.shape) or any(
        w is not None and w != g for w, g in zip(want, data.shape[1:], strict=False)
    ):
        raise InputError(
            f"{label}: calibration data has shape {_fmt(data.shape)}, the model expects {_fmt((None, *want))}"
        )
    if not np.all(np.isfinite(data)):
        raise InputError(f"{label}: calibration data contains NaN or infinite values")
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):  # token ids, indices: integers in, integers kept
        if not np.array_equal(data, np.round(data)):
            raise InputError(f"{label}: input {spec.name!r} takes integers ({spec.dtype}); the data has fractions")
        return data.astype(dtype)
    return data.astype(np.float32 if dtype.kind == "f" else dtype)


def load_calibration(source: str | Path | Callable[[], object], specs: list[TensorSpec]) -> Feeds:
    """Load calibration inputs for a model's ``specs``, checked and cast; one array per input name.

    A single-input model takes any source; a model with several inputs takes
    an ``.npz`` (or a callable returning a dict) with one array per input
    name, all with the same number of samples. Integer inputs (token ids)
    stay integer; fractional values for them are an error.

    Example:
        >>> load_calibration("missing.npy", [TensorSpec("x", (None, 4), "float32")])
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.npy: calibration data not found
    """
    raw = _read(source, specs)
    missing = [s.name for s in specs if s.name not in raw]
    if missing:
        raise InputError(f"{source}: no calibration array for input(s) {', '.join(missing)} (found: {', '.join(raw)})")
    feeds = {s.name: _checked(source, s, np.asarray(raw[s.name]), len(specs) > 1) for s in specs}
    counts = {name: len(a) for name, a in feeds.items()}
    if len(set(counts.values())) > 1:
        raise InputError(f"{source}: inputs have different sample counts: {counts}")
    return feeds


def count(feeds: Feeds) -> int:
    """Number of samples in ``feeds``.

    Example:
        >>> count({"x": np.zeros((3, 2))})
        3
    """
    return len(next(iter(feeds.values())))


def split_sample(feeds: Feeds, calib_size: int, check_size: int, seed: int = 0) -> tuple[Feeds, Feeds]:
    """Shuffle once; return (calibration sample, held-out check sample), disjoint where data allows.

    With fewer samples than ``calib_size + check_size`` a quarter (at most
    ``check_size``) is held out and the rest calibrates; the caller records
    the real counts.

    Example:
        >>> c, k = split_sample({"x": np.arange(10.0)[:, None]}, 6, 4)
        >>> len(c["x"]), len(k["x"]), len(set(c["x"].ravel()) & set(k["x"].ravel()))
        (6, 4, 0)
    """
    n = count(feeds)
    order = np.random.default_rng(seed).permutation(n)
    if n >= calib_size + check_size:
        calib_idx, check_idx = order[:calib_size], order[calib_size : calib_size + check_size]
    else:
        held = max(1, min(check_size, n // 4))
        calib_idx, check_idx = (order[held:] if n > held else order), order[:held]
    return {k: v[calib_idx] for k, v in feeds.items()}, {k: v[check_idx] for k, v in feeds.items()}


def value_ranges(feeds: Feeds) -> dict[str, dict[str, float]]:
    """Min / max / mean of each input, for the manifest.

    Example:
        >>> value_ranges({"x": np.array([[0.0], [2.0]])})
        {'x': {'min': 0.0, 'max': 2.0, 'mean': 1.0}}
    """
    return {k: {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())} for k, v in feeds.items()}


def with_excursions(feeds: Feeds, value: float, fraction: float, seed: int = 0,
                    only: set[str] | None = None) -> tuple[Feeds, int]:  # fmt: skip
    """Calibration data with excursions added: copies of a ``fraction`` of the samples in which one value (one
    feature, or two consecutive steps of one channel of a window) is set to ``±value``. ``only``: the inputs
    that get them (a streaming model's step input, not its state); the others get the same samples unchanged.

    For anomaly detectors: int8 calibrates each tensor's range on the data it is given, and normal data puts
    the input's edge at the largest normal value, so an anomaly beyond it is clipped to a normal-looking input
    and scores as normal. The excursions stretch the input range past the normal one (and the ranges the
    error takes downstream), so an anomaly stays visible; only the calibration sample gets them, never the
    held-out check sample.

    Example:
        >>> out, n = with_excursions({"x": np.zeros((10, 4), np.float32)}, 6.0, 0.2)
        >>> n, out["x"].shape, sorted(set(np.abs(out["x"]).sum(axis=1).tolist()))
        (2, (12, 4), [0.0, 6.0])
    """
    rng = np.random.default_rng(seed)
    n = max(1, round(fraction * count(feeds)))
    rows = rng.choice(count(feeds), n)  # the same samples of every input
    out = {}
    for name, data in feeds.items():
        extra = data[rows].copy()
        if not np.issubdtype(data.dtype, np.floating) or (only is not None and name not in only):
            out[name] = np.concatenate([data, extra])
            continue
        for sample in extra:
            flat = sample.reshape(-1, sample.shape[-1]) if sample.ndim > 1 else sample.reshape(1, -1)
            step, channel = rng.integers(0, max(1, len(flat) - 1)), rng.integers(0, flat.shape[1])
            flat[step : step + 2 if len(flat) > 1 else step + 1, channel] = rng.choice([-value, value])
        out[name] = np.concatenate([data, extra])
    return out, n

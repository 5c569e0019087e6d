"""The data a recipe trains on, as numpy splits (scikit-learn's datasets and splitter; no TensorFlow).

Sources: ``sklearn:digits`` (8×8 handwritten digits, pixels 0..255),
``sklearn:breast_cancer`` (30 features; label 1 = benign), ``synthetic:sensor``
(a seeded 3-channel stream with injected spikes, drifts and dropouts), an
image folder (one sub-folder per class), an ``.npz`` with arrays ``x`` and
``y``, or a CSV series (header row; one column per variable).

Example:
    >>> s = load_splits(DataConfig(source="sklearn:digits", classes=[0, 1]), "image_classifier")
    >>> s.x_train.shape[1:], sorted(set(s.y_train.tolist()))
    ((8, 8, 1), [0, 1])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.readers import IMAGE_SUFFIXES, read_arrays, read_image, windows
from edgekit.errors import InputError
from edgekit.recipes import DataConfig

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Train / validation / test arrays plus what describes them (class names, scaler, counts)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _labelled_source(source: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if source == "sklearn:digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images * (255.0 / 16.0))[..., None].astype(np.float32), digits.target, {"dataset": source}
    if source == "sklearn:breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bc = load_breast_cancer()
        return bc.data.astype(np.float32), bc.target, {"dataset": source, "labels": list(bc.target_names)}
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: data not found")
    if path.is_dir():
        return _image_folder(path)
    if path.suffix == ".npz":
        z = read_arrays(path)
        if "x" not in z.files or "y" not in z.files:
            raise InputError(f"{source}: the .npz needs arrays 'x' and 'y' (found: {', '.join(z.files)})")
        return z["x"].astype(np.float32), z["y"], {"dataset": str(path)}
    raise InputError(f"{source}: labelled data must be an image folder, an .npz (x, y) or sklearn:digits")


def _regression_source(source: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``x`` and ``y`` of an ``.npz`` (``y`` defaults to ``x``: a reconstruction target)."""
    path = Path(source)
    if path.suffix != ".npz" or not path.is_file():
        raise InputError(f"{source}: regression data must be an .npz with 'x' (and 'y'; without it y = x)")
    z = read_arrays(path)
    if "x" not in z.files:
        raise InputError(f"{source}: the .npz needs an array 'x' (found: {', '.join(z.files)})")
    x = z["x"].astype(np.float32)
    y = z["y"].astype(np.float32) if "y" in z.files else x
    if len(x) != len(y):
        raise InputError(f"{source}: 'x' has {len(x)} samples, 'y' has {len(y)}")
    return x, y, {"dataset": str(path), "target": "y" if y is not x else "x (reconstruction)"}


def _image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Every readable image, resized to the first image's size; unreadable files are skipped and counted."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise InputError(f"{folder}: an image folder needs one sub-folder per class and at least two classes")
    images, labels, skipped = [], [], []
    size: tuple[int, int] | None = None
    for label, name in enumerate(classes):
        for f in sorted((folder / name).rglob("*")):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = read_image(f, size)
            if image is None:
                skipped.append(str(f.relative_to(folder)))
                continue
            size = size or (image.shape[1], image.shape[0])
            images.append(image)
            labels.append(label)
    if skipped:
        log.warning("%s: skipped %d unreadable image(s), e.g. %s", folder, len(skipped), skipped[0])
    if len(set(labels)) < 2:
        raise InputError(f"{folder}: readable images in fewer than two classes")
    info = {"dataset": str(folder), "labels": classes, "skipped_unreadable": len(skipped)}
    return np.stack(images), np.array(labels), info


def _series(source: str, config: DataConfig) -> tuple[np.ndarray, list[str]]:
    """A CSV series as (time, variables); the target column comes last."""
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{source}: series CSV not found")
    lines = path.read_text().splitlines()
    header = [h.strip().strip('"') for h in lines[0].split(",")]
    try:
        rows = np.genfromtxt(lines[1:], delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{source}: not a numeric CSV ({exc})") from None
    target = config.target or header[-1]
    if target not in header:
        raise InputError(f"{source}: no column {target!r} (columns: {', '.join(header)})")
    series = rows[:, [header.index(target)]]
    if not np.all(np.isfinite(series)):
        bad = int(np.argmax(~np.isfinite(series).all(axis=1))) + 2
        raise InputError(f"{source}: column {target!r} has NaN or missing values (first at line {bad})")
    return series.astype(np.float32), [target]


def sensor_stream(steps: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 3-channel machine sensor stream (two vibrations and a steady temperature, with noise) and its anomaly mask.

    Spikes, drifts and dropouts are injected only after the first 40 % (the
    normal stretch a detector trains on). A step is anomalous where the
    injection moved it by more than 0.3 (six noise σ), so the first steps of a
    drift, still buried in noise, are not labelled.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(steps, dtype=np.float64)
    clean = np.stack(
        [np.sin(2 * np.pi * t / 50), 0.6 * np.sin(2 * np.pi * t / 23 + 1.0), np.full_like(t, 0.5)], axis=1
    ) + 0.05 * rng.standard_normal((steps, 3))
    stream = clean.copy()
    start = int(0.4 * steps)
    for kind in ("spike", "drift", "dropout") * 12:
        at = int(rng.integers(start, steps - 80))
        channel = int(rng.integers(0, 3))
        if kind == "spike":
            stream[at : at + 2, channel] += rng.choice([-1, 1]) * rng.uniform(1.5, 3.0)
        elif kind == "drift":
            length = int(rng.integers(40, 80))
            stream[at : at + length, channel] += np.linspace(0, rng.uniform(0.8, 1.5), length)
        else:
            stream[at : at + int(rng.integers(10, 30)), channel] = 0.0
    anomalous = np.abs(stream - clean).max(axis=1) > 0.3
    return stream.astype(np.float32), anomalous


def _stratified(y: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=fractions[0], random_state=seed, stratify=y)
    val_share = fractions[1] / (1 - fractions[0])
    train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=y[rest])
    return train, val, test


def load_splits(config: DataConfig, family: str, seed: int = 0) -> Splits:
    """Load and split the data of one recipe section for ``family``.

    Classifiers: stratified random splits. Forecasters: chronological splits of
    sliding windows. Anomaly detectors: trained and thresholded on normal data
    only; the test split holds held-out normal samples and every anomaly.
    Regressors and reconstruction models (``family="regressor"``: an ``.npz``
    with ``x`` and ``y``, or ``x`` alone for an autoencoder): plain random
    splits (continuous or image targets cannot be stratified).
    """
    fractions = (config.test_fraction, config.val_fraction)
    if family == "forecaster":
        series, columns = _series(config.source, config)
        x, y = windows(series, config.window)
        n_test, n_val = int(len(x) * fractions[0]), int(len(x) * fractions[1])
        n_train = len(x) - n_test - n_val
        if n_train < 2 or n_test < 1 or n_val < 1:
            raise InputError(f"{config.source}: {len(x)} windows are too few to split into train, validation, test")
        cut = [n_train, n_train + n_val]
        return Splits(
            x[: cut[0]], y[: cut[0]], x[cut[0] : cut[1]], y[cut[0] : cut[1]], x[cut[1] :], y[cut[1] :],
            {"dataset": config.source, "columns": columns, "window": config.window, "split": "chronological",
             "train_steps": n_train + config.window},
        )  # fmt: skip
    if config.source == "synthetic:sensor":
        stream, mask = sensor_stream(seed=seed)
        starts = range(0, len(stream) - config.window, config.window // 2)
        x = np.stack([stream[s : s + config.window] for s in starts])
        y = np.array([int(mask[s : s + config.window].any()) for s in starts])
        labels = np.where(y == 0, 1, 0)  # normal_label 1, as for breast cancer
        info = {"dataset": "synthetic:sensor", "window": config.window, "channels": 3}
        return _anomaly_splits(x, labels, 1, fractions, seed, info)
    if family == "regressor":
        x, y, info = _regression_source(config.source)
        order = np.random.default_rng(seed).permutation(len(x))
        n_test, n_val = int(len(x) * fractions[0]), int(len(x) * fractions[1])
        if len(x) - n_test - n_val < 2 or n_test < 1 or n_val < 1:
            raise InputError(f"{config.source}: {len(x)} samples are too few to split into train, validation, test")
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        return Splits(x[train], y[train], x[val], y[val], x[test], y[test], {**info, "split": "random"})
    x, y, info = _labelled_source(config.source)
    if family == "autoencoder":
        normal = 1 if config.normal_label is None else config.normal_label
        return _anomaly_splits(x.reshape(len(x), -1) if x.ndim > 2 else x, y, normal, fractions, seed, info)
    if config.classes is not None:
        keep = np.isin(y, config.classes)
        if not keep.any():
            raise InputError(f"{config.source}: none of the classes {config.classes} is in the data")
        remap = {c: i for i, c in enumerate(sorted(set(config.classes)))}
        x, y = x[keep], np.array([remap[int(v)] for v in y[keep]])
        info["classes"] = sorted(set(config.classes))
    if len(np.unique(y)) < 2:
        raise InputError(f"{config.source}: a classifier needs at least two classes, the data has one")
    if family == "sequence_classifier" and x.ndim == 4:
        x = x[..., 0]  # 8×8 images read row by row: 8 steps of 8 features
    train, val, test = _stratified(y, fractions, seed)
    info["num_classes"] = len(np.unique(y))
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test], info)


def _anomaly_splits(
    x: np.ndarray, labels: np.ndarray, normal: int, fractions: tuple[float, float], seed: int, info: dict[str, Any]
) -> Splits:
    rng = np.random.default_rng(seed)
    normal_idx = rng.permutation(np.flatnonzero(labels == normal))
    anomalies = np.flatnonzero(labels != normal)
    if len(anomalies) == 0 or len(normal_idx) < 10:
        raise InputError("anomaly data needs normal samples and at least one anomaly (check data.normal_label)")
    n_test, n_val = int(len(normal_idx) * fractions[0]), max(1, int(len(normal_idx) * fractions[1]))
    test = np.concatenate([normal_idx[:n_test], anomalies])
    val, train = normal_idx[n_test : n_test + n_val], normal_idx[n_test + n_val :]
    is_anomaly = (labels != normal).astype(np.int64)
    info = {**info, "normal_label": normal, "anomalies_in_test": len(anomalies), "normal_in_test": n_test}
    return Splits(x[train], is_anomaly[train], x[val], is_anomaly[val], x[test], is_anomaly[test], info)

"""What a conversion starts from: the source model and the calibration data, resolved and content-addressed.

A model object or a calibration callable given through the API is stored in the run directory's work
folder first, so the worker process (and the cache key) sees files only.

Example:
    >>> inputs = resolve_inputs("runs/lstm_sunspots", "runs/lstm_sunspots/calib.npy")  # doctest: +SKIP
    >>> inputs.model_path.name  # doctest: +SKIP
    'model.keras'
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.io import sha256_tree
from edgekit.errors import InputError
from edgekit.rundir import RunDir, model_source

Calibration = str | Path | Callable[[], Any] | None


@dataclass
class ConvertInputs:
    """The source and calibration of one conversion, as files, with their sha256."""

    source: Any  # what the caller gave: a path or a Keras model object
    model_path: Path | None
    calib: Calibration
    run_task: dict[str, Any] = field(default_factory=dict)
    normal: Path | None = None  # anomaly detectors: the run's held-out normal inputs (thresholds)
    test_split: Path | None = None  # a run's labelled test split: what the mixed tokens are measured on
    recipe_budgets: dict[str, float] = field(default_factory=dict)  # the run recipe's validate.budgets
    source_sha: str = ""
    calib_sha: str | None = None

    @property
    def stem(self) -> str:
        """The artifacts' file stem: the model file's stem, or the SavedModel / run directory's name."""
        assert self.model_path is not None
        return self.model_path.stem if self.model_path.is_file() else self.model_path.name


def is_path(source: Any) -> bool:
    """Whether ``source`` names a file or folder (rather than being a model object).

    Example:
        >>> is_path("m.keras"), is_path(3)
        (True, False)
    """
    return isinstance(source, (str, os.PathLike))


def resolve_inputs(source: Any, calib: Calibration) -> ConvertInputs:
    """Check ``source`` and ``calib`` before anything is written; files are hashed later by :func:`materialize`.

    Example:
        >>> resolve_inputs(3, None)
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: source must be a model path or a Keras model, not int
    """
    if not is_path(source) and not (hasattr(source, "save") and hasattr(source, "inputs")):
        raise InputError(f"source must be a model path or a Keras model, not {type(source).__name__}")
    model_path = model_source(source) if is_path(source) else None
    if calib is not None and not callable(calib) and not Path(calib).exists():
        raise InputError(f"{calib}: calibration data not found")
    if not is_path(source) or not Path(source).is_dir():
        return ConvertInputs(source, model_path, calib)
    run = RunDir(source)
    record = run.read_record() or {}
    budgets = ((record.get("recipe") or {}).get("validate") or {}).get("budgets") or {}
    normal = run.normal_split if run.normal_split.is_file() else None
    test = run.test_split if run.test_split.is_file() else None
    return ConvertInputs(source, model_path, calib, dict(record.get("task") or {}), normal, test, budgets)


def materialize(inputs: ConvertInputs, run: RunDir) -> ConvertInputs:
    """Store a model object and a calibration callable in the work folder, and hash what the artifacts depend on.

    Example:
        >>> materialize(resolve_inputs("m.keras", None), RunDir("runs/m").prepare()).source_sha  # doctest: +SKIP
        '3f1c...'
    """
    if inputs.model_path is None:
        inputs.model_path = _save_model_object(inputs.source, run.worker.source)
        inputs.source_sha = _model_object_sha(inputs.source)
    else:
        inputs.source_sha = sha256_tree(inputs.model_path)
    if callable(inputs.calib):
        inputs.calib = _materialize_calibration(inputs.calib, run.worker.calibration)
    inputs.calib_sha = sha256_tree(inputs.calib) if inputs.calib is not None else None
    return inputs


def _save_model_object(model: Any, folder: Path) -> Path:
    """Save a Keras model object given through the API as ``.edgekit/source/<name>.keras``."""
    path = folder / f"{model.name}.keras"
    path.parent.mkdir(exist_ok=True)
    try:
        model.save(path)
    except Exception as exc:
        raise InputError(f"model {model.name!r} cannot be saved as .keras: {type(exc).__name__}: {exc}") from None
    return path


def _model_object_sha(model: Any) -> str:
    """Content address of a model object: its config and weights (a saved .keras carries a timestamp)."""
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def _materialize_calibration(make: Callable[[], Any], path: Path) -> Path:
    """Call a calibration callable once and store what it returns (an array, or arrays by input name)."""
    try:
        data = make()
        arrays = {k: np.asarray(v) for k, v in data.items()} if isinstance(data, dict) else {"x": np.asarray(data)}
    except Exception as exc:
        raise InputError(f"the calibration callable failed: {type(exc).__name__}: {exc}") from None
    np.savez(path, **arrays)
    return path

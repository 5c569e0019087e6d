"""``edgekit train`` and ``edgekit run``: a recipe in, a run directory out.

The run directory holds ``model.keras`` (float32, preprocessing inside, no
augmentation), ``calib.npy`` (training inputs for int8 calibration), the
per-stage history CSVs, best checkpoints, and ``manifest.json`` with the
recipe, data splits, precision decision, strategy, metrics and the scoring a
deployed model needs (labels, forecaster scaler, anomaly threshold). ``convert``
continues from it; ``run`` chains train → convert.

Example:
    >>> manifest = train("models/autoencoder_breast_cancer.yaml", out="runs/ae")  # doctest: +SKIP
    >>> manifest["metrics"]["roc_auc"] >= 0.9  # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.manifest import now, prepare_run_dir, sha256_file, tool_versions, write_manifest
from edgekit.recipes import Recipe, load_recipe, recipe_to_dict
from edgekit.validation.data import TEST_SPLIT

FAMILY_TRAINERS = {
    "image_classifier": ("edgekit.models.mobilenet", "train"),
    "forecaster": ("edgekit.models.lstm", "train_forecaster"),
    "sequence_classifier": ("edgekit.models.lstm", "train_sequence_classifier"),
    "autoencoder": ("edgekit.models.autoencoder", "train"),
}
CALIBRATION_SAMPLES = 300
Progress = Callable[[str, int, int], None]


def train(
    recipe: str | Path | Recipe,
    *,
    data: str | None = None,
    out: str | Path | None = None,
    strategy: str = "default",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train a recipe; return the run manifest (also written to ``out/manifest.json``).

    Under ``--strategy multiworker`` only the chief writes ``out``; other
    workers write to a temporary folder that is removed afterwards.

    Example:
        >>> m = train("models/lstm_sunspots.yaml")  # doctest: +SKIP
        >>> m["metrics"]["mae"] < m["metrics"]["naive_mae"]  # doctest: +SKIP
        True
    """
    from edgekit.datasets import load_splits

    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if data is not None:
        recipe.data.source = data
    start = time.perf_counter()
    splits = load_splits(recipe.data, recipe.family, recipe.train.seed)  # bad data fails here, before TensorFlow
    pretrain_splits = (
        load_splits(recipe.pretrain.data, "image_classifier", recipe.train.seed) if recipe.pretrain else None
    )
    from edgekit.training import Trainer, is_chief

    chief = is_chief()
    run_dir = prepare_run_dir(run_dir_for(recipe, out) if chief else tempfile.mkdtemp(prefix="edgekit-worker-"))
    trainer = Trainer(run_dir, recipe.train, strategy, progress)
    module, name = FAMILY_TRAINERS[recipe.family]
    family_train = getattr(importlib.import_module(module), name)
    args = (
        (recipe, splits, trainer, pretrain_splits) if recipe.family == "image_classifier" else (recipe, splits, trainer)
    )
    result = family_train(*args)
    model_path = _save_float32(result.model, run_dir)
    save_calibration(run_dir, splits.x_train)
    save_test_split(run_dir, splits.x_test, splits.y_test)
    manifest = {
        "edgekit_manifest": 1,
        "stage": "train",
        "created_at": now(),
        "recipe": recipe_to_dict(recipe),
        "recipe_path": recipe.path,
        "data": {
            **{k: v for k, v in splits.info.items() if k != "labels"},
            "train": len(splits.x_train),
            "val": len(splits.x_val),
            "test": len(splits.x_test),
            "input_shape": list(splits.x_train.shape[1:]),
        },
        "precision": {"policy": trainer.policy, "reason": trainer.policy_reason, "saved_as": "float32"},
        "strategy": {"name": strategy, "replicas": trainer.replicas},
        "metrics": {**{k: round(v, 6) for k, v in result.metrics.items()}, **trainer.extra},
        "task": result.task,
        "history": trainer.history,
        "seconds": round(time.perf_counter() - start, 1),
        "tools": tool_versions(),
        "artifacts": [
            _artifact(run_dir, model_path, "keras", "model"),
            _artifact(run_dir, run_dir / "calib.npy", "npy", "calibration"),
            _artifact(run_dir, run_dir / TEST_SPLIT, "npz", "test"),
        ],
    }
    write_manifest(run_dir, manifest)
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
    return manifest


def run_dir_for(recipe: Recipe, out: str | Path | None) -> Path:
    """``out``, or ``runs/<recipe name>`` by default.

    Example:
        >>> from edgekit.recipes import recipe_from_dict
        >>> run_dir_for(recipe_from_dict({"name": "ae", "family": "autoencoder", "data": {"source": "x"}}), None)
        PosixPath('runs/ae')
    """
    return Path(out or Path("runs") / recipe.name)


def save_calibration(run_dir: Path, x_train: np.ndarray) -> Path:
    """A seeded sample of training inputs as ``calib.npy``: what ``convert`` calibrates int8 artifacts with.

    Example:
        >>> save_calibration(Path("runs/ae"), x_train).name  # doctest: +SKIP
        'calib.npy'
    """
    sample = x_train[np.random.default_rng(0).permutation(len(x_train))[:CALIBRATION_SAMPLES]]
    np.save(run_dir / "calib.npy", sample.astype(np.float32))
    return run_dir / "calib.npy"


def save_test_split(run_dir: Path, x_test: np.ndarray, y_test: np.ndarray) -> Path:
    """The held-out test split as ``test.npz`` (``x``, ``y``): what ``edgekit validate`` scores a run's artifacts on.

    ``y`` is what the model's output is judged against: class indices, the next value, or 1 for an anomaly.

    Example:
        >>> save_test_split(Path("runs/ae"), x_test, y_test).name  # doctest: +SKIP
        'test.npz'
    """
    part = run_dir / ".edgekit" / TEST_SPLIT
    np.savez(part, x=x_test.astype(np.float32) if x_test.dtype.kind == "f" else x_test, y=y_test)
    return part.replace(run_dir / TEST_SPLIT)


def _save_float32(model: Any, run_dir: Path) -> Path:
    """Save the inference model as float32 (a mixed-precision model is rebuilt with the same weights)."""
    import keras

    from edgekit.converters.source import as_float32

    keras.mixed_precision.set_global_policy("float32")
    part = run_dir / ".edgekit" / "model.keras"
    as_float32(model).save(part)
    return part.replace(run_dir / "model.keras")


def _artifact(run_dir: Path, path: Path, fmt: str, role: str) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(run_dir)), "format": fmt, "role": role,
        "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
    }  # fmt: skip


def run(recipe: str | Path, *, data: str | None = None, out: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Every stage that exists, in order: train, convert into ``<run>/convert`` with the recipe's outputs, then
    validate every artifact on the held-out test split into ``<run>/validate`` (the recipe's targets, threads
    and budgets; broken budgets are listed in the report's ``budgets_broken``, and ``edgekit run`` exits 4).

    Example:
        >>> m = run("models/autoencoder_breast_cancer.yaml", out="runs/ae")  # doctest: +SKIP
        >>> sorted(m)  # doctest: +SKIP
        ['convert', 'train', 'validate']
    """
    from edgekit.convert import convert
    from edgekit.errors import BudgetExceededError
    from edgekit.validate import validate

    parsed = load_recipe(recipe)
    trained = train(parsed, data=data, out=out, **kwargs)
    run_dir = run_dir_for(parsed, out)
    converted = convert(
        run_dir, run_dir / "convert", to=parsed.convert.to, calib=run_dir / "calib.npy",
        calib_samples=parsed.convert.calib_samples,
    )  # fmt: skip
    try:
        validated = validate([run_dir], out=run_dir / "validate")
    except BudgetExceededError as exc:
        validated = exc.report
    return {"train": trained, "convert": converted, "validate": validated}

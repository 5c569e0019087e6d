"""``edgekit train``: a recipe in, a run directory out.

The run directory (:class:`~edgekit.rundir.RunDir`) holds ``model.keras`` (float32, preprocessing inside, no
augmentation), ``calib.npy`` (training inputs for int8 calibration), ``test.npz`` (the held-out split),
the per-stage history CSVs, best checkpoints, and the train record with the recipe, data splits, precision
decision, strategy, metrics and the scoring a deployed model needs (labels, forecaster scaler, anomaly
threshold). This driver imports no TensorFlow itself: the training runs in :mod:`edgekit.buildlane.train`.

Example:
    >>> record = train("models/autoencoder_breast_cancer.yaml", out="runs/ae")  # doctest: +SKIP
    >>> record["metrics"]["roc_auc"] >= 0.9  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.common.io import sha256_file, tool_versions
from edgekit.recipes import Recipe, load_recipe, recipe_to_dict
from edgekit.rundir import Record, RunDir

Progress = Callable[[str, int, int], None]


def train(
    recipe: str | Path | Recipe,
    *,
    data: str | None = None,
    out: str | Path | None = None,
    strategy: str = "default",
    progress: Progress | None = None,
) -> Record:
    """Train a recipe; return the train record (also written to ``out/manifest.json``).

    Under ``--strategy multiworker`` only the chief writes ``out``; other
    workers write to a temporary folder that is removed afterwards.

    Example:
        >>> m = train("models/lstm_sunspots.yaml")  # doctest: +SKIP
        >>> m["metrics"]["mae"] < m["metrics"]["naive_mae"]  # doctest: +SKIP
        True
    """
    from edgekit.buildlane.train import fit_recipe, load_recipe_splits

    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if data is not None:
        recipe.data.source = data
    start = time.perf_counter()
    splits, pretrain = load_recipe_splits(recipe)
    chief = is_chief()
    run = RunDir(run_dir_for(recipe, out) if chief else tempfile.mkdtemp(prefix="edgekit-worker-")).prepare()
    fitted = fit_recipe(recipe, run, splits, pretrain, strategy, progress)
    record = run.write_record(
        "train",
        {
            "recipe": recipe_to_dict(recipe),
            "recipe_path": recipe.path,
            "data": {
                **{k: v for k, v in splits.info.items() if k != "labels"},
                "train": len(splits.x_train),
                "val": len(splits.x_val),
                "test": len(splits.x_test),
                "input_shape": list(splits.x_train.shape[1:]),
            },
            "precision": {"policy": fitted.policy, "reason": fitted.policy_reason, "saved_as": "float32"},
            "strategy": {"name": strategy, "replicas": fitted.replicas},
            "metrics": fitted.metrics,
            "task": fitted.task,
            "history": fitted.history,
            "seconds": round(time.perf_counter() - start, 1),
            "tools": tool_versions(),
            "artifacts": [
                _artifact(run, run.model, "keras", "model"),
                _artifact(run, run.calibration, "npy", "calibration"),
                _artifact(run, run.test_split, "npz", "test"),
                *([_artifact(run, run.normal_split, "npy", "threshold")] if run.normal_split.is_file() else []),
            ],
        },
    )
    if not chief:
        shutil.rmtree(run.root, ignore_errors=True)
    return record


def run_dir_for(recipe: Recipe, out: str | Path | None) -> Path:
    """``out``, or ``runs/<recipe name>`` by default.

    Example:
        >>> from edgekit.recipes import recipe_from_dict
        >>> run_dir_for(recipe_from_dict({"name": "ae", "family": "autoencoder", "data": {"source": "x"}}), None)
        PosixPath('runs/ae')
    """
    return Path(out or Path("runs") / recipe.name)


def is_chief() -> bool:
    """True unless TF_CONFIG names this process as a non-chief worker (only the chief writes the run directory).

    Example:
        >>> is_chief()
        True
    """
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    has_chief = "chief" in config.get("cluster", {})
    return task.get("type", "chief") == "chief" or (not has_chief and task.get("index", 0) == 0)


def _artifact(run: RunDir, path: Path, fmt: str, role: str) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(run.root)), "format": fmt, "role": role,
        "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
    }  # fmt: skip

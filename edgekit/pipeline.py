"""Stages chained through a run directory: ``edgekit run`` (train → convert → validate) and ``edgekit optimize``
(optimize → convert the source and the result → measure).

Stages never import each other; this module is the one place that knows their order.

Example:
    >>> records = run("models/autoencoder_breast_cancer.yaml", out="runs/ae")  # doctest: +SKIP
    >>> sorted(records)  # doctest: +SKIP
    ['convert', 'train', 'validate']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.errors import BudgetExceededError
from edgekit.recipes import load_recipe
from edgekit.rundir import Record, RunDir
from edgekit.stages.convert import ConvertSettings, convert
from edgekit.stages.convert.settings import RUN_DEFAULT_TO
from edgekit.stages.optimize import OptimizeSettings, measure, optimize_model
from edgekit.stages.train import train
from edgekit.stages.train.driver import run_dir_for
from edgekit.stages.validate import validate


def run(recipe: str | Path, *, data: str | None = None, out: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Every stage that exists, in order: train, convert into ``<run>/convert`` with the recipe's outputs, then
    validate every artifact on the held-out test split into ``<run>/validate`` (the recipe's targets, threads
    and budgets; broken budgets are listed in the report's ``budgets_broken``, and ``edgekit run`` exits 4).
    A recipe with ``convert: {streaming: true}`` also converts its sequence model to one-step artifacts into
    ``<run>/convert_streaming`` and validates them there (per-step latency, each test window stepped through).

    Example:
        >>> m = run("models/autoencoder_breast_cancer.yaml", out="runs/ae")  # doctest: +SKIP
        >>> sorted(m)  # doctest: +SKIP
        ['convert', 'train', 'validate']
    """
    parsed = load_recipe(recipe)
    trained = train(parsed, data=data, out=out, **kwargs)
    run_dir = RunDir(run_dir_for(parsed, out))
    settings = parsed.convert if parsed.convert.to else dataclasses.replace(parsed.convert, to=RUN_DEFAULT_TO)
    windowed = dataclasses.replace(settings, streaming=False)
    converted = convert(run_dir.root, run_dir.convert.root, settings=windowed, calib=run_dir.calibration)
    records = {"train": trained, "convert": converted, "validate": _validated([run_dir.root], run_dir.validate.root)}
    if settings.streaming:  # the recipe asks for streaming artifacts too, beside the windowed ones
        folder = run_dir.convert_streaming
        records["convert_streaming"] = convert(run_dir.root, folder.root, settings=settings, calib=run_dir.calibration)
        records["validate_streaming"] = _validated([folder.root], folder.validate.root)
    return records


def _validated(sources: list[Path], out: Path) -> Record:
    """The validate report, also when a budget broke (listed in its ``budgets_broken``; the CLI exits 4)."""
    try:
        return validate(sources, out=out)
    except BudgetExceededError as exc:
        return exc.report


def optimize(
    source: str | Path,
    settings: OptimizeSettings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Record:
    """``edgekit optimize``: the passes, then the source and the result converted to fp32 + int8 TFLite and
    measured (int8 score on the test split, sizes, gzip sizes, zeros and unique values per layer).

    The optimized model and its int8 file are held to a budget (see
    :meth:`~edgekit.stages.optimize.OptimizeSettings.budget`): broken, the record is written and
    :class:`~edgekit.errors.BudgetExceededError` (exit 4) names each broken figure.

    ``settings`` (or the same names as keyword arguments) say which passes run and how; see
    :class:`~edgekit.stages.optimize.OptimizeSettings`.

    Example:
        >>> m = optimize("runs/lstm_sunspots", prune=0.5)  # doctest: +SKIP
        >>> m["metrics"]["mae_after"] <= 1.05 * m["metrics"]["mae_before"]  # doctest: +SKIP
        True
    """
    settings = (
        dataclasses.replace(settings, **options).check() if settings else OptimizeSettings.from_options(**options)
    )
    result = optimize_model(source, settings, progress)
    for side in result.sides():
        if progress:
            progress(f"converting the {'source' if side.name == 'before' else 'optimized'} model")
        side.record = convert(
            side.model, side.out.root, settings=ConvertSettings(to=side.tokens, custom_objects=settings.custom_objects),
            calib=result.run.calibration,
        )  # fmt: skip
    record = measure(result)
    if broken := record["budgets_broken"]:
        error = BudgetExceededError(
            f"{len(broken)} budget(s) broken (record in {result.run.manifest}): {'; '.join(broken)}; the flags "
            "--max-accuracy-drop / --max-error-increase (or the recipe's optimize: section) set the budget"
        )
        error.report = record  # written first; the CLI still prints it
        raise error
    return record

"""``edgekit train`` (a recipe into a run directory) and ``edgekit run`` (train, convert and validate it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import Progress

from edgekit.cli.app import app
from edgekit.cli.convert import exit_on_failed_artifacts
from edgekit.cli.options import with_train_options
from edgekit.cli.render import emit_json, print_conversion, print_training, print_validation, progress_bar
from edgekit.errors import BudgetExceededError


def _epoch_progress() -> tuple[Progress, Callable[[str, int, int], None]]:
    """A progress bar with one task per stage, and the callback that feeds it."""
    bar = progress_bar("training")
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done)

    return bar, update


@app.command("train")
@with_train_options
def train_cmd(recipe: str, data: str | None, out_dir: str | None, strategy: str, as_json: bool) -> None:
    """Train a recipe (models/*.yaml) into a run directory: model.keras, history, metrics, manifest."""
    from edgekit.stages.train import train

    bar, update = _epoch_progress()
    with bar:
        manifest = train(recipe, data=data, out=out_dir, strategy=strategy, progress=update)
    emit_json(manifest) if as_json else print_training(manifest)


@app.command("run")
@with_train_options
def run_cmd(recipe: str, data: str | None, out_dir: str | None, strategy: str, as_json: bool) -> None:
    """Run every stage for a recipe: train, convert (into <run>/convert), validate (into <run>/validate)."""
    from edgekit.pipeline import run

    bar, update = _epoch_progress()
    with bar:
        manifests = run(recipe, data=data, out=out_dir, strategy=strategy, progress=update)
    if as_json:
        emit_json(manifests)
    else:
        print_training(manifests["train"])
        print_conversion(manifests["convert"], str(Path(manifests["convert"]["source"]["path"]).parent / "convert"))
        print_validation(manifests["validate"])
        if "convert_streaming" in manifests:
            folder = Path(manifests["validate_streaming"]["report_dir"]).parent
            print_conversion(manifests["convert_streaming"], str(folder))
            print_validation(manifests["validate_streaming"])
    exit_on_failed_artifacts(manifests["convert"])
    if "convert_streaming" in manifests:
        exit_on_failed_artifacts(manifests["convert_streaming"])
    broken = manifests["validate"]["budgets_broken"] + manifests.get("validate_streaming", {}).get("budgets_broken", [])
    if broken:
        raise BudgetExceededError(f"{len(broken)} budget(s) broken: " + "; ".join(b["message"] for b in broken))

"""``edgekit validate``: every artifact on every target and thread count, scored on labelled data; budgets exit 4."""

from __future__ import annotations

import click

from edgekit.cli.app import app
from edgekit.cli.options import custom_objects_option, json_option, split_list, with_budget_options
from edgekit.cli.render import emit_json, print_validation, progress_bar
from edgekit.common.metrics import KINDS
from edgekit.errors import BudgetExceededError
from edgekit.runtime.targets import TARGETS


@app.command("validate")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--data", help="Labelled data: .npz (x, y), image folder, CSV (default: the run's test split).")
@click.option("--targets", callback=split_list(str), help=f"Comma-separated, from {', '.join(TARGETS)} (default cpu).")
@click.option("--threads", callback=split_list(int), help="Comma-separated thread counts (default 1).")
@click.option("--task", type=click.Choice(KINDS), default=None, help="How the output is scored (default: detected).")
@click.option("--out", "out_dir", default=None, help="Report folder (default: <run>/validate).")
@click.option("--no-reference", is_flag=True, help="Skip the Keras reference (agreement against the fp32 artifact).")
@click.option(
    "--unsafe", is_flag=True, help="Load the Keras reference with safe_mode off (Lambda layers: trusted files)."
)
@custom_objects_option
@json_option("Print report.json on stdout.")
@with_budget_options
def validate_cmd(
    sources: tuple[str, ...],
    data: str | None,
    targets: list[str] | None,
    threads: list[int] | None,
    task: str | None,
    out_dir: str | None,
    no_reference: bool,
    unsafe: bool,
    custom_objects: str | None,
    as_json: bool,
    **budgets: float,
) -> None:
    """Accuracy, agreement, latency, size and memory of every artifact on every target; budgets gate CI (exit 4)."""
    from edgekit.stages.validate import validate

    bar = progress_bar("validating")
    with bar:
        task_id = bar.add_task("validating", total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task_id, description=description, completed=done, total=total)

        try:
            report = validate(list(sources), data=data, targets=targets, threads=threads, task=task, out=out_dir,
                              budgets=budgets, reference=not no_reference, unsafe=unsafe,
                              custom_objects=custom_objects, progress=update)  # fmt: skip
            broken = None
        except BudgetExceededError as exc:
            report, broken = exc.report, exc
    emit_json(report) if as_json else print_validation(report)
    if broken is not None:
        raise broken

"""``edgekit optimize``: prune, cluster and/or quantization-aware-train a Keras model, then convert and measure it."""

from __future__ import annotations

from typing import Any

import click

from edgekit.cli.app import app
from edgekit.cli.options import custom_objects_option, json_option
from edgekit.cli.render import emit_json, err, print_optimization
from edgekit.common.parity import TASKS
from edgekit.errors import BudgetExceededError
from edgekit.stages.optimize.settings import BATCHNORM_POLICIES


@app.command("optimize")
@click.argument("source", type=click.Path(path_type=str))
@click.option("--prune", type=float, default=None, help="Target sparsity in [0, 1), e.g. 0.5.")
@click.option(
    "--prune-schedule", type=click.Choice(["polynomial", "constant"]), default="polynomial", show_default=True
)
@click.option("--structured-2-4", is_flag=True, help="2:4 structured sparsity (two zeros in every four weights).")
@click.option("--cluster", type=int, default=None, help="Number of weight clusters (>= 2), e.g. 16.")
@click.option(
    "--cluster-init", type=click.Choice(["kmeans++", "linear", "density", "random"]), default="kmeans++",
    show_default=True,
)  # fmt: skip
@click.option("--qat", is_flag=True, help="Quantization-aware training (PQAT / CQAT after --prune / --cluster).")
@click.option("--leave-float", default="", help="Comma-separated layer names QAT keeps in float.")
@click.option("--data", help="Fine-tuning data (default: the train run's recipe data).")
@click.option("--epochs", type=int, default=5, show_default=True, help="Fine-tuning epochs per pass.")
@click.option("--learning-rate", type=float, default=None, help="Fine-tuning rate [default: 3e-4; QAT 1e-4].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the fine-tuning (shuffling, dropout).")
@click.option(
    "--task", type=click.Choice(TASKS), default=None, help="Split, loss and score (default: detected, see manifest)."
)
@click.option(
    "--max-accuracy-drop", type=float, default=None,
    help="Accuracy points the optimized model and its int8 file may lose [default: 0.02, or the recipe's].",
)  # fmt: skip
@click.option(
    "--max-error-increase", type=float, default=None,
    help="Relative MAE increase allowed for regressors [default: 0.25, or the recipe's].",
)  # fmt: skip
@click.option(
    "--batchnorm", type=click.Choice(BATCHNORM_POLICIES), default="auto", show_default=True,
    help="BatchNorm while pruning: adapt (trains, statistics re-estimated), frozen, or auto (see README).",
)  # fmt: skip
@custom_objects_option
@click.option("--out", "out_dir", type=click.Path(path_type=str), default=None, help="Run directory.")
@json_option("Print the run manifest as JSON.")
def optimize_cmd(source: str, leave_float: str, out_dir: str | None, as_json: bool, **options: Any) -> None:
    """Prune, cluster and/or quantization-aware-train a Keras model (via tf_keras + TFMOT); convert and measure."""
    from edgekit.pipeline import optimize
    from edgekit.stages.optimize import OptimizeSettings

    with err.status("optimizing") as status:
        settings = OptimizeSettings.from_options(
            leave_float=[n for n in leave_float.split(",") if n], out=out_dir, **options
        )
        try:
            manifest, broken = optimize(source, settings, progress=lambda msg: status.update(msg)), None
        except BudgetExceededError as exc:  # the record is written: print it, then exit 4 naming each figure
            manifest, broken = exc.report, exc
    if as_json:
        emit_json(manifest)
    else:
        print_optimization(source, manifest)
    if broken is not None:
        raise broken

"""``edgekit inspect``: what a .tflite or .onnx model holds, with optional target pre-flight and RAM budget."""

from __future__ import annotations

import click

from edgekit.cli.app import app
from edgekit.cli.options import json_option, parse_size
from edgekit.cli.render import emit_json, kb, print_inspection
from edgekit.errors import BudgetExceededError
from edgekit.runtime.targets import TARGETS


@app.command("inspect")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--target", type=click.Choice(TARGETS), default=None, help="Add a pre-flight for this target.")
@click.option("--ram-budget", callback=parse_size, default=None, help="RAM the model must fit in (512K, 8M, 1G).")
@json_option("Print the report as JSON.")
def inspect_cmd(model: str, target: str | None, ram_budget: int | None, as_json: bool) -> None:
    """Show what a .tflite or .onnx model holds: I/O, ops, params, MACs, quantization, memory.

    With --target edgetpu: which ops the Edge TPU compiler would map and which stay on the CPU
    (and why); with --target gpu: the ops LiteRT's GPU delegate cannot take. A model over
    --ram-budget exits 4.
    """
    from edgekit.inspection import inspect_model

    report = inspect_model(model, target=target, ram_budget=ram_budget)
    if as_json:
        emit_json(report)
    else:
        print_inspection(model, report)
    budget = report.get("ram_budget")
    if budget and not budget["fits"]:
        raise BudgetExceededError(
            f"{model} needs {kb(budget['needed_bytes'])} (parameters + activations + state), "
            f"over the {kb(budget['budget_bytes'])} RAM budget"
        )

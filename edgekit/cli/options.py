"""Options and parameter callbacks more than one command uses, or that turn a flag's text into a value.

Example:
    >>> @with_budget_options
    ... def command(**budgets: float) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
Callback = Callable[[click.Context, click.Parameter, str | None], Any]


def stacked(*decorators: Decorator) -> Decorator:
    """One decorator applying ``decorators`` as if written one above the other, in this order."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def json_option(help_text: str | None = None) -> Decorator:
    """``--json``, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


custom_objects_option = click.option(
    "--custom-objects", type=click.Path(path_type=str), default=None, help="Python file defining custom layers."
)


def parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``512K``, ``8M``, ``1G``... as a number of bytes."""
    from edgekit.preflight.memory import parse_bytes

    return None if value is None else parse_bytes(value)


def split_list(kind: type) -> Callback:
    """A callback parsing a comma-separated list of ``kind`` (blank items skipped)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Any] | None:
        if value is None:
            return None
        try:
            return [kind(v.strip()) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None

    return parse


def floats(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    """A comma-separated list of numbers, one per channel (``--mean``, ``--std``)."""
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


BUDGET_OPTIONS = (
    ("max-accuracy-drop", "Largest drop of the main metric below the Keras reference (0.01 = 1 point)."),
    ("max-error", "Largest main error metric (MAE of regressors / forecasters, reconstruction MSE)."),
    ("min-agreement", "Smallest top-1 / decision agreement with the reference (cosine where neither applies)."),
    ("max-latency-ms", "Largest p90 latency at batch 1."),
    ("max-size-mb", "Largest file size (MB = 10^6 bytes)."),
    ("max-memory-mb", "Largest peak resident memory of the process running the artifact (MiB)."),
)

with_budget_options = stacked(
    *(click.option(f"--{name}", type=float, default=None, help=help_text) for name, help_text in BUDGET_OPTIONS)
)
# ``edgekit convert``: what ``tflite:mixed`` must meet (the accuracy, error and agreement budgets), and on what.
with_mixed_budget_options = stacked(
    click.option(
        "--data",
        type=click.Path(path_type=str),
        default=None,
        help="tflite:mixed is measured on this .npz (x, y) (default: the run's test split).",
    ),
    *(
        click.option(f"--{name}", type=float, default=None, help=f"tflite:mixed: {help_text}")
        for name, help_text in BUDGET_OPTIONS[:3]
    ),
)

# ``edgekit train`` and ``edgekit run`` take the same arguments.
with_train_options = stacked(
    click.argument("recipe", type=click.Path(path_type=str)),
    click.option("--data", default=None, help="Train on this data instead of the recipe's (same formats)."),
    click.option("--out", "out_dir", type=click.Path(path_type=str), default=None, help="Run directory."),
    click.option(
        "--strategy",
        type=click.Choice(["default", "mirrored", "multiworker"]),
        default="default",
        show_default=True,
        help="tf.distribute strategy; multiworker reads TF_CONFIG.",
    ),
    json_option("Print the run manifest as JSON."),
)

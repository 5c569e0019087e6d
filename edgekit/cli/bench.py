"""``edgekit bench``: init time, latency percentiles, throughput and peak memory of a model on a target."""

from __future__ import annotations

import os

import click

from edgekit.cli.app import app
from edgekit.cli.options import json_option
from edgekit.cli.render import emit_json, notice, print_bench, print_bench_fallback, progress_bar
from edgekit.runtime.targets import TARGETS


@app.command("bench")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads (default: runtime's).")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--target", type=click.Choice([*TARGETS, "pi"]), default="cpu", show_default=True)
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=str),
    default=None,
    help=".npy/.npz input instead of random data.",
)
@json_option("Print the result as JSON.")
def bench_cmd(
    model: str,
    threads: int | None,
    runs: int,
    warmup: int,
    batch: int,
    target: str,
    input_file: str | None,
    as_json: bool,
) -> None:
    """Measure init time, latency percentiles, throughput and peak memory (pi: on an aarch64 host only)."""
    from edgekit.bench import benchmark
    from edgekit.runtime.pi import host_is_aarch64

    if target == "pi":
        if not host_is_aarch64():
            why = "pi: this host is not aarch64, and a latency under emulation is not a Pi's: run edgekit bench on "
            notice("unavailable", why + "the Pi (edgekit validate --targets pi checks what the model computes)")
            raise click.exceptions.Exit(3)
        target = "cpu"  # an aarch64 host: its CPU is the Pi-class CPU measured

    with progress_bar("bench") as bar:
        task = bar.add_task(f"bench {os.path.basename(model)}", total=runs)
        result = benchmark(
            model, threads=threads, runs=runs, warmup=warmup, batch=batch, target=target,
            input_file=input_file, progress=lambda done, total: bar.update(task, completed=done),
        )  # fmt: skip
    print_bench_fallback(result)
    if as_json:
        emit_json(result)
    else:
        print_bench(model, result)

"""The ``edgekit`` command line.

Every command maps :class:`~edgekit.errors.EdgekitError` to one line on stderr
and the error's exit code; usage errors exit with 2. Nothing here imports
TensorFlow unless a build-lane command (convert, train, optimize) runs.

Example:
    $ edgekit inspect model.tflite --json
    $ edgekit bench model.tflite --threads 2 --runs 200
    $ edgekit doctor
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgekit import __version__
from edgekit._native import native_output_captured
from edgekit.errors import BudgetExceededError, EdgekitError
from edgekit.parity import TASKS
from edgekit.runtime.targets import TARGETS
from edgekit.validation.metrics import KINDS

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
log = logging.getLogger("edgekit")


def emit_json(payload: Any) -> None:
    """Write ``payload`` as JSON on stdout (nothing else goes to stdout with ``--json``)."""
    out.out(json.dumps(payload, indent=2, default=str), highlight=False)


def progress_bar(description: str) -> Progress:
    """A transient progress bar on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.2f} MiB"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def app(verbose: int) -> None:
    """edgekit: take Keras models to edge devices (TFLite, ONNX, Edge TPU)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])


# -- inspect --------------------------------------------------------------------------------


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from edgekit.preflight.memory import parse_bytes

    return None if value is None else parse_bytes(value)


@app.command("inspect")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--target", type=click.Choice(TARGETS), default=None, help="Add a pre-flight for this target.")
@click.option("--ram-budget", callback=_parse_size, default=None, help="RAM the model must fit in (512K, 8M, 1G).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
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
        _print_inspection(model, report)
    budget = report.get("ram_budget")
    if budget and not budget["fits"]:
        raise BudgetExceededError(
            f"{model} needs {_kb(budget['needed_bytes'])} (parameters + activations + state), "
            f"over the {_kb(budget['budget_bytes'])} RAM budget"
        )


def _print_inspection(model: str, report: dict[str, Any]) -> None:
    summary = Table(title=f"{model}", show_header=False, title_justify="left")
    memory = report["memory"]
    activations = memory["activation_peak_bytes"]
    for key, value in (
        ("format", report["format"]),
        ("size", _kb(report["size_bytes"])),
        ("quantization", report["quantization"]),
        ("ops", f"{report['ops_total']} ({len(report['op_histogram'])} kinds)"),
        ("params", f"{report['params']:,}"),
        ("MACs", f"{report['macs']:,}"),
        ("memory", f"parameters {_kb(memory['param_bytes'])}, activation peak "
                   f"{_kb(activations) if activations is not None else 'unknown'}"),
        ("edgetpu compiled", "yes" if report["edgetpu_compiled"] else "no"),
        ("signatures", ", ".join(report["signatures"]) or "-"),
        (
            "state across invokes",
            f"yes: {len(report['variable_tensors'])} variable tensors; call reset_all_variables() before each "
            "independent inference"
            if report["needs_state_reset"]
            else "no",
        ),
        ("metadata", ", ".join(f"{k}={v}" for k, v in report["metadata"].items() if k != "edgekit") or "-"),
    ):  # fmt: skip
        summary.add_row(key, str(value))
    if bundled := report.get("edgekit_metadata"):
        pre = bundled["inputs"][0]["preprocessing"]
        what = f"{bundled['task']} for {bundled['platform']}; input {pre['kind']} {pre.get('size', '')} "
        summary.add_row("edgekit bundle", what + f"{pre.get('feed', '')}; outputs {bundled['postprocessing']}")
    if budget := report.get("ram_budget"):
        verdict = "fits" if budget["fits"] else "[red]does not fit[/]"
        needs = f"needs {_kb(budget['needed_bytes'])} of {_kb(budget['budget_bytes'])}"
        summary.add_row("RAM budget", f"{verdict}: {needs}")
    out.print(summary)
    tensors = Table("", "name", "shape", "dtype", "quantization", title="inputs / outputs", title_justify="left")
    for kind in ("inputs", "outputs"):
        for t in report[kind]:
            q = t["quantization"]
            qtext = f"scale={q['scale']:.6g} zp={q['zero_point']}" if q else "-"
            tensors.add_row(kind[:-1], t["name"], str(t["shape"]), t["dtype"], qtext)
    out.print(tensors)
    ops = Table("op", "count", title="op histogram", title_justify="left")
    for op, count in report["op_histogram"].items():
        ops.add_row(op, str(count))
    out.print(ops)
    if tpu := report.get("edgetpu"):
        _print_edgetpu(tpu)
    if gpu := report.get("gpu"):
        _print_gpu(gpu)


def _print_edgetpu(tpu: dict[str, Any]) -> None:
    if tpu["compiled"]:
        out.print(f"[bold]Edge TPU[/]: compiled; {tpu['ops_cpu']} op(s) left on the CPU: "
                  f"{', '.join(tpu['cpu_ops']) or '-'}")  # fmt: skip
        return
    for blocker in tpu["blockers"]:
        out.print(f"[red]Edge TPU: cannot compile: {blocker}[/]", markup=True)
    out.print(
        f"[bold]Edge TPU pre-flight[/]: {tpu['ops_mapped']} op(s) map to the TPU, {tpu['ops_cpu']} stay on the CPU; "
        f"parameters on-chip {_kb(tpu['param_bytes_on_chip'])}, streamed {_kb(tpu['param_bytes_off_chip'])}"
    )
    if tpu["reasons"] and not tpu["blockers"]:
        table = Table("#", "op", "why it stays on the CPU", title="CPU ops", title_justify="left")
        for r in tpu["reasons"]:
            table.add_row(str(r["index"]), r["op"], r["reason"])
        out.print(table)


def _print_gpu(gpu: dict[str, Any]) -> None:
    if gpu["fully_accelerated"] is None:
        out.print(f"[bold]GPU[/]: {gpu['note']}")
        return
    out.print(f"[bold]GPU pre-flight[/]: {'fully accelerated' if gpu['fully_accelerated'] else gpu['target']} "
              f"({gpu['ops_on_gpu']} of {gpu['ops_total']} ops on the GPU)")  # fmt: skip
    if gpu["unsupported_ops"]:
        table = Table("#", "op", "why the GPU delegate does not take it", title="unsupported", title_justify="left")
        for u in gpu["unsupported_ops"]:
            table.add_row(str(u["index"]), u["op"], u["reason"])
        out.print(table)


# -- bench ----------------------------------------------------------------------------------


@app.command("bench")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads (default: runtime's).")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--target", type=click.Choice(TARGETS), default="cpu", show_default=True)
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=str),
    default=None,
    help=".npy/.npz input instead of random data.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
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
    """Measure init time, latency percentiles, throughput and peak memory."""
    from edgekit.bench import benchmark

    with progress_bar("bench") as bar:
        task = bar.add_task(f"bench {os.path.basename(model)}", total=runs)
        result = benchmark(
            model, threads=threads, runs=runs, warmup=warmup, batch=batch, target=target,
            input_file=input_file, progress=lambda done, total: bar.update(task, completed=done),
        )  # fmt: skip
    if result["unavailable_reason"]:
        err.print(f"[yellow]{result['unavailable_reason']}; measured on {result['target_used']} instead[/]")
    if result["fallback_reason"]:
        err.print(f"[yellow]ran on {result['target_used']}: {result['fallback_reason']}[/]")
    if as_json:
        emit_json(result)
        return
    lat = result["latency_ms"]
    table = Table(
        title=f"{model} on {result['target_used']} ({result['backend']})", show_header=False, title_justify="left"
    )
    for key, value in (
        ("threads / batch / runs", f"{result['threads'] or 'default'} / {result['batch']} / {result['runs']}"),
        ("init", f"{result['init_ms']:.1f} ms"),
        ("latency p50 / p90 / p99", f"{lat['p50']:.3f} / {lat['p90']:.3f} / {lat['p99']:.3f} ms"),
        ("latency min / mean / max", f"{lat['min']:.3f} / {lat['mean']:.3f} / {lat['max']:.3f} ms"),
        ("throughput", f"{result['throughput_per_s']:,.1f} samples/s"),
        ("peak RSS", f"{result['peak_rss_mb']:.1f} MiB"),
    ):
        table.add_row(key, value)
    out.print(table)


# -- convert --------------------------------------------------------------------------------


@app.command("convert")
@click.argument("source", type=click.Path(path_type=str))
@click.option(
    "--out", "out_dir", type=click.Path(path_type=str), default=None, help="Run directory (default: runs/<model name>)."
)
@click.option(
    "--to",
    default=None,
    help="Comma-separated outputs, e.g. tflite:fp32,tflite:int8,onnx:int8 (default: all the data allows).",
)
@click.option(
    "--calib", type=click.Path(path_type=str), default=None, help="Calibration data: image folder, .npy/.npz or .csv."
)
@click.option("--calib-samples", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--check-samples", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Static batch size of the artifacts."
)
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (9..18 with tf2onnx 1.17).")
@click.option("--int8-io", type=click.Choice(["int8", "uint8", "float32"]), default="int8", show_default=True)
@click.option(
    "--int8-granularity",
    type=click.Choice(["per-channel", "per-tensor"]),
    default="per-channel",
    show_default=True,
    help="Weight scales of int8 artifacts: per output channel (accurate) or per tensor (smaller).",
)
@click.option(
    "--custom-objects", type=click.Path(path_type=str), default=None, help="Python file defining custom layers."
)
@click.option("--unsafe", is_flag=True, help="Turn Keras safe_mode off (loads Lambda layers: trusted files only).")
@click.option("--allow-select-tf-ops", is_flag=True, help="Keep ops TFLite builtins lack as TensorFlow ops.")
@click.option(
    "--task", type=click.Choice(TASKS), default=None, help="How outputs are compared (default: detected, see manifest)."
)
@click.option("--strict", is_flag=True, help="Exit 3 when a quantized artifact is out of its tolerance too.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def convert_cmd(source: str, out_dir: str | None, as_json: bool, **options: Any) -> None:
    """Convert a Keras model (.keras, .h5, SavedModel or run directory) to TFLite and ONNX, checked against it."""
    from edgekit.convert import convert

    out_dir = out_dir or str(Path("runs") / Path(source).stem)
    with err.status("converting") as status:
        manifest = convert(source, out_dir, progress=lambda msg: status.update(msg), **options)
    if as_json:
        emit_json(manifest)
    else:
        _print_conversion(manifest, out_dir)
    _exit_on_failed_artifacts(manifest)


def _exit_on_failed_artifacts(manifest: dict[str, Any]) -> None:
    """Name each failed artifact and each warning; exit 2 for an unsupported op (bad input), else 3 on failure.

    Under ``--strict`` a quantized artifact out of its tolerance fails the command too.
    """
    for warning in manifest.get("warnings", []):
        err.print(f"edgekit: warning: {warning}", markup=False)
    for failure in manifest["failed"]:
        err.print(f"edgekit: failed: {failure['error']}", markup=False)
    if any(f.get("unsupported_op") for f in manifest["failed"]):
        raise click.exceptions.Exit(2)  # the model needs a flag or a change: bad input, not a converter fault
    strict = manifest["settings"].get("strict") and any(
        a.get("verdict") == "out_of_tolerance" for a in manifest["artifacts"]
    )
    if manifest["failed"] or strict:
        raise click.exceptions.Exit(3)


def _print_conversion(manifest: dict[str, Any], out_dir: str) -> None:
    arts = manifest["artifacts"]
    fp32 = next((a["size_bytes"] for a in arts if a["precision_token"] == "tflite:fp32"), None)
    table = Table(
        "artifact",
        "size",
        "vs fp32",
        "parity",
        "time",
        title=f"{out_dir} ({manifest['conversion'].get('route', '')})",
        title_justify="left",
    )
    for a in arts:
        p = a["parity"]
        if "unavailable" in p:
            table.add_row(a["path"], _kb(a["size_bytes"]), "-", "[yellow]unchecked[/]: " + p["unavailable"], "-")
            continue
        parity = f"max abs {p['max_abs_error']:.2g}"
        if "top1_agreement" in p:
            parity += f", top-1 {p['top1_agreement']:.1%}"
        parity += " ok" if a.get("verdict") == "pass" else " [red]OUT OF TOLERANCE[/]"
        ratio = f"{a['size_bytes'] / fp32:.2f}x" if fp32 else "-"
        when = "reused" if a.get("reused") else f"{a['convert_seconds']:.1f} s"
        table.add_row(a["path"], _kb(a["size_bytes"]), ratio, parity, when)
    if arts:
        out.print(table)
    preflight = (manifest.get("edgetpu") or {}).get("preflight")
    if preflight:
        total = preflight["ops_mapped"] + preflight["ops_cpu"]
        first = (f"; the CPU part starts at op {preflight['first_cpu_op_index']} ({preflight['cpu_ops'][0]}: "
                 f"{preflight['reasons'][0]['reason']})" if preflight["cpu_ops"] else "")  # fmt: skip
        out.print(f"Edge TPU pre-flight of {manifest['edgetpu']['model']}: {preflight['ops_mapped']} of {total} ops "
                  f"map{first}")  # fmt: skip


# -- train / run ----------------------------------------------------------------------------

_train_options = [
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
    click.option("--json", "as_json", is_flag=True, help="Print the run manifest as JSON."),
]


def _with_train_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_train_options):
        f = option(f)
    return f


def _epoch_progress() -> tuple[Progress, Callable[[str, int, int], None]]:
    bar = progress_bar("training")
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done)

    return bar, update


@app.command("train")
@_with_train_options
def train_cmd(recipe: str, data: str | None, out_dir: str | None, strategy: str, as_json: bool) -> None:
    """Train a recipe (models/*.yaml) into a run directory: model.keras, history, metrics, manifest."""
    from edgekit.train import train

    bar, update = _epoch_progress()
    with bar:
        manifest = train(recipe, data=data, out=out_dir, strategy=strategy, progress=update)
    emit_json(manifest) if as_json else _print_training(manifest)


@app.command("run")
@_with_train_options
def run_cmd(recipe: str, data: str | None, out_dir: str | None, strategy: str, as_json: bool) -> None:
    """Run every stage for a recipe: train, convert (into <run>/convert), validate (into <run>/validate)."""
    from edgekit.train import run

    bar, update = _epoch_progress()
    with bar:
        manifests = run(recipe, data=data, out=out_dir, strategy=strategy, progress=update)
    if as_json:
        emit_json(manifests)
    else:
        _print_training(manifests["train"])
        _print_conversion(manifests["convert"], str(Path(manifests["convert"]["source"]["path"]).parent / "convert"))
        _print_validation(manifests["validate"])
    _exit_on_failed_artifacts(manifests["convert"])
    broken = manifests["validate"]["budgets_broken"]
    if broken:
        raise BudgetExceededError(f"{len(broken)} budget(s) broken: " + "; ".join(b["message"] for b in broken))


def _print_training(manifest: dict[str, Any]) -> None:
    recipe = manifest["recipe"]
    table = Table("metric", "value", title=f"{recipe['name']} ({recipe['family']})", title_justify="left")
    for key, value in manifest["metrics"].items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("precision", f"{manifest['precision']['policy']} ({manifest['precision']['reason']})")
    table.add_row(
        "data", f"{manifest['data']['train']} train / {manifest['data']['val']} val / {manifest['data']['test']} test"
    )
    table.add_row("time", f"{manifest['seconds']:.1f} s")
    out.print(table)


# -- optimize -------------------------------------------------------------------------------


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
    "--custom-objects", type=click.Path(path_type=str), default=None, help="Python file defining custom layers."
)
@click.option("--out", "out_dir", type=click.Path(path_type=str), default=None, help="Run directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the run manifest as JSON.")
def optimize_cmd(source: str, leave_float: str, out_dir: str | None, as_json: bool, **options: Any) -> None:
    """Prune, cluster and/or quantization-aware-train a Keras model (via tf_keras + TFMOT); convert and measure."""
    from edgekit.optimize import optimize

    with err.status("optimizing") as status:
        manifest = optimize(
            source, leave_float=[n for n in leave_float.split(",") if n], out=out_dir,
            progress=lambda msg: status.update(msg), **options,
        )  # fmt: skip
    if as_json:
        emit_json(manifest)
        return
    table = Table("figure", "before", "after", title=f"optimize {source}", title_justify="left")
    report = manifest["report"]
    for key in [k for k in manifest["metrics"] if k.endswith("_before")]:
        stem = key[: -len("_before")]
        table.add_row(stem, f"{manifest['metrics'][key]:.4f}", f"{manifest['metrics'][stem + '_after']:.4f}")
    for precision in ("fp32", "int8"):
        if precision not in report["after"]["artifacts"]:  # a QAT result converts to int8 only
            continue
        b, a = report["before"]["artifacts"][precision], report["after"]["artifacts"][precision]
        table.add_row(f"{precision} size / gzip", f"{_kb(b['size_bytes'])} / {_kb(b['gzip_bytes'])}",
                      f"{_kb(a['size_bytes'])} / {_kb(a['gzip_bytes'])}")  # fmt: skip
    table.add_row("int8 weight sparsity", f"{report['before']['weights']['sparsity']:.1%}",
                  f"{report['after']['weights']['sparsity']:.1%}")  # fmt: skip
    table.add_row("int8 weight entropy", f"{report['before']['weights']['entropy_bits_per_weight']:.2f} bits",
                  f"{report['after']['weights']['entropy_bits_per_weight']:.2f} bits")  # fmt: skip
    out.print(table)


# -- doctor ---------------------------------------------------------------------------------


@app.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """Report runtimes, converters, CPU features, GPUs and Edge TPU tools found here."""
    from edgekit.doctor import diagnose

    report = diagnose()
    if as_json:
        emit_json(report)
        return
    table = Table("item", "status", title="edgekit doctor", title_justify="left")

    def row(name: str, item: dict[str, Any]) -> None:
        if item["available"]:
            table.add_row(name, f"[green]available[/] {item.get('version') or item.get('detail') or ''}")
        else:
            table.add_row(name, f"[red]unavailable[/]: {item['reason']}")

    for lane, packages in report["packages"].items():
        for name, item in packages.items():
            row(f"{lane}: {name}", item)
    for name, present in report["cpu_features"].items():
        row(f"cpu: {name}", {"available": present, "detail": "", "reason": "not reported by this CPU"})
    for name, item in {**report["targets"], **report["tools"]}.items():
        row(f"target: {name}" if name in report["targets"] else f"tool: {name}", item)
    out.print(table)


# -- validate -------------------------------------------------------------------------------


def _split_list(kind: type) -> Callable[[click.Context, click.Parameter, str | None], list[Any] | None]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Any] | None:
        if value is None:
            return None
        try:
            return [kind(v.strip()) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None

    return parse


BUDGET_OPTIONS = (
    ("max-accuracy-drop", "Largest drop of the main metric below the Keras reference (0.01 = 1 point)."),
    ("max-error", "Largest main error metric (MAE of regressors / forecasters, reconstruction MSE)."),
    ("min-agreement", "Smallest top-1 / decision agreement with the reference (cosine where neither applies)."),
    ("max-latency-ms", "Largest p90 latency at batch 1."),
    ("max-size-mb", "Largest file size (MB = 10^6 bytes)."),
    ("max-memory-mb", "Largest peak resident memory of the process running the artifact (MiB)."),
)


def _with_budget_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, help_text in reversed(BUDGET_OPTIONS):
        f = click.option(f"--{name}", type=float, default=None, help=help_text)(f)
    return f


@app.command("validate")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--data", help="Labelled data: .npz (x, y), image folder, CSV (default: the run's test split).")
@click.option("--targets", callback=_split_list(str), help=f"Comma-separated, from {', '.join(TARGETS)} (default cpu).")
@click.option("--threads", callback=_split_list(int), help="Comma-separated thread counts (default 1).")
@click.option("--task", type=click.Choice(KINDS), default=None, help="How the output is scored (default: detected).")
@click.option("--out", "out_dir", default=None, help="Report folder (default: <run>/validate).")
@click.option("--no-reference", is_flag=True, help="Skip the Keras reference (agreement against the fp32 artifact).")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout.")
@_with_budget_options
def validate_cmd(
    sources: tuple[str, ...],
    data: str | None,
    targets: list[str] | None,
    threads: list[int] | None,
    task: str | None,
    out_dir: str | None,
    no_reference: bool,
    as_json: bool,
    **budgets: float,
) -> None:
    """Accuracy, agreement, latency, size and memory of every artifact on every target; budgets gate CI (exit 4)."""
    from edgekit.validate import validate

    bar = progress_bar("validating")
    with bar:
        task_id = bar.add_task("validating", total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task_id, description=description, completed=done, total=total)

        try:
            report = validate(list(sources), data=data, targets=targets, threads=threads, task=task, out=out_dir,
                              budgets=budgets, reference=not no_reference, progress=update)  # fmt: skip
            broken = None
        except BudgetExceededError as exc:
            report, broken = exc.report, exc
    emit_json(report) if as_json else _print_validation(report)
    if broken is not None:
        raise broken


def _print_validation(report: dict[str, Any]) -> None:
    from edgekit.validation.report import HEADER, table_rows

    ref = report["reference"]
    note = "measured" if ref["status"] == "measured" else f"unavailable: {ref['reason']}"
    keep = ["artifact", "target", "threads", "main metric", "agreement", "p50 ms", "p90 ms", "size MB", "peak RSS MiB"]
    table = Table(*keep, title=f"validate: {report['data']['samples']} samples from {report['data']['path']}",
                  title_justify="left", caption=f"Keras reference: {note}", caption_justify="left")  # fmt: skip
    notes = []
    for r, row in zip(report["results"], table_rows(report), strict=True):
        cells = dict(zip(HEADER, row, strict=True))
        cells["artifact"] = Path(r["artifact"]).name
        if r["status"] != "measured":
            notes.append(f"{cells['artifact']} on {r['target_requested']}: {r['status']}: {r['reason']}")
            cells["main metric"] = r["status"]
        table.add_row(*(cells[k] for k in keep))
    out.print(table)
    for line in notes:
        out.print(line, markup=False)
    for target, advice in report["recommendations"].items():
        if advice.get("reason"):
            out.print(f"{target}: no recommendation ({advice['reason']})")
        else:
            out.print(f"{target}: smallest {advice['smallest']['artifact']}, fastest {advice['fastest']['artifact']} "
                      f"at {advice['fastest']['threads']} thread(s)")  # fmt: skip
    out.print(f"report: {report['report_dir']}/report.html")


# -- bundle / predict / verify ---------------------------------------------------------------


def _floats(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


@app.command("bundle")
@click.argument("source", type=click.Path(path_type=str))
@click.option("--platform", type=click.Choice(["rpi", "coral", "android", "ios"]), required=True)
@click.option("--labels", type=click.Path(path_type=str), default=None, help="Labels file, one per line.")
@click.option("--out", "out_dir", type=click.Path(path_type=str), default=None, help="Bundle folder (new).")
@click.option("--zip", "zip_archive", is_flag=True, help="Also write OUT.zip.")
@click.option("--mean", callback=_floats, default=None, help="Image normalization: (pixel - mean) / std, per channel.")
@click.option("--std", callback=_floats, default=None)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print edgekit.json.")
def bundle_cmd(
    source: str, platform: str, out_dir: str | None, zip_archive: bool, as_json: bool, **options: Any
) -> None:
    """Pack a run directory or a .tflite into a folder an app runs without guessing (edgekit.json)."""
    from edgekit.bundle import bundle

    manifest = bundle(source, platform, out=out_dir, zip_archive=zip_archive, **options)
    where = out_dir or f"bundles/{Path(manifest['model']['source']).stem}_{platform}"
    if as_json:
        emit_json(manifest)
        return
    out.print(f"{where}: {manifest['model']['file']} ({manifest['model']['precision']}, {manifest['task']}) "
              f"for {platform}: {manifest['model']['chosen_because']}")  # fmt: skip
    for name in manifest["files"]:
        out.print(f"  {name}")
    for warning in manifest["warnings"]:
        err.print(f"edgekit: warning: {warning}", markup=False)
    if zip_archive:
        out.print(f"  and {where}.zip")


@app.command("predict")
@click.argument("source", type=click.Path(path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Classes to show (default: the bundle's).")
@click.option("--labels", type=click.Path(path_type=str), default=None, help="Labels file for a bare model.")
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per input.")
def predict_cmd(source: str, inputs: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Run a bundle (folder or zip) or a .tflite on images, .npy windows or CSV rows."""
    from edgekit.bundling.app import describe
    from edgekit.predict import predict

    results = predict(source, list(inputs), **options)
    if as_json:
        emit_json(results)
        return
    for r in results:
        out.print(f"{os.path.basename(r['input'])}: {describe(r)}", markup=False)


@app.command("verify")
@click.argument("source", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(source: str, as_json: bool) -> None:
    """Check a bundle: schema version, every sha256, labels, that the model loads and runs from its spec.

    Exits 3 when the inference needs hardware that is not here (a compiled model without an Edge TPU).
    """
    from edgekit.verify import verify

    report = verify(source)
    if as_json:
        emit_json(report)
    else:
        for check in report["checks"]:
            out.print(f"ok  {check}", markup=False)
    if report["unavailable"]:
        err.print(f"edgekit: unavailable: {report['unavailable']}; the rest verified", markup=False)
        raise click.exceptions.Exit(3)


# -- entry point ----------------------------------------------------------------------------


def _silence_native_teardown() -> None:
    """LiteRT logs accelerator teardown on fd 2 after Python exits; keep it off the terminal."""
    try:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
    except OSError:
        pass


def main(argv: list[str] | None = None, *, entry: Callable[..., Any] = app) -> int:
    """Run the CLI; return the exit code instead of raising.

    Example:
        >>> main(["inspect", "missing.tflite"])  # doctest: +SKIP
        2
    """
    atexit.register(_silence_native_teardown)
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("--verbose", "-v", "-vv") for a in args)
    try:
        with native_output_captured(passthrough=verbose) as native:
            code = entry.main(args=args, prog_name="edgekit", standalone_mode=False)
        log.debug("native output: %s", native.text)
    except EdgekitError as exc:
        err.print(f"edgekit: error: {exc}", markup=False)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("edgekit: aborted")
        return 130
    except click.ClickException as exc:
        err.print(f"edgekit: error: {exc.format_message()}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        err.print(
            f"edgekit: internal error: {type(exc).__name__}: {exc} (set EDGEKIT_DEBUG=1 for the traceback)",
            markup=False,
        )
        return 1
    return code if isinstance(code, int) else 0  # click returns the code of click.exceptions.Exit here


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

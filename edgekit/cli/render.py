"""Everything the CLI shows: the two rich consoles, JSON output, progress bars and one table per command.

Results go to stdout (``out``); progress, warnings and errors go to stderr (``err``), so ``--json`` output
stays parseable. Nothing here decides an exit code.

Example:
    >>> kb(1536)
    '1.5 KiB'
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

# Off a terminal (CI logs, `| tee`) rich would lay tables out in 80 columns and cut artifact names to `model…`:
# 160 unless COLUMNS says otherwise.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def emit_json(payload: Any) -> None:
    """Write ``payload`` as JSON on stdout (nothing else goes to stdout with ``--json``)."""
    out.out(json.dumps(payload, indent=2, default=str), highlight=False)


def progress_bar(description: str) -> Progress:
    """A transient progress bar on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip


def notice(kind: str, message: str) -> None:
    """One ``edgekit: KIND: MESSAGE`` line on stderr, printed as is (no rich markup)."""
    err.print(f"edgekit: {kind}: {message}", markup=False)


def kb(n: int) -> str:
    """A byte count in KiB, or MiB from 1 MiB on."""
    return f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.2f} MiB"


# -- inspect --------------------------------------------------------------------------------


def print_inspection(model: str, report: dict[str, Any]) -> None:
    """The summary, I/O tensors, op histogram and the Edge TPU / GPU pre-flights of ``edgekit inspect``."""
    summary = Table(title=f"{model}", show_header=False, title_justify="left")
    memory = report["memory"]
    activations = memory["activation_peak_bytes"]
    for key, value in (
        ("format", report["format"]),
        ("size", kb(report["size_bytes"])),
        ("quantization", report["quantization"]),
        ("ops", f"{report['ops_total']} ({len(report['op_histogram'])} kinds)"),
        ("params", f"{report['params']:,}"),
        ("MACs", f"{report['macs']:,}"),
        ("memory", f"parameters {kb(memory['param_bytes'])}, activation peak "
                   f"{kb(activations) if activations is not None else 'unknown'}"),
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
        needs = f"needs {kb(budget['needed_bytes'])} of {kb(budget['budget_bytes'])}"
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
        f"parameters on-chip {kb(tpu['param_bytes_on_chip'])}, streamed {kb(tpu['param_bytes_off_chip'])}"
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


def print_bench_fallback(result: dict[str, Any]) -> None:
    """On stderr: why the benchmark ran on another target than the one asked for, if it did."""
    if result["unavailable_reason"]:
        err.print(f"[yellow]{result['unavailable_reason']}; measured on {result['target_used']} instead[/]")
    if result["fallback_reason"]:
        err.print(f"[yellow]ran on {result['target_used']}: {result['fallback_reason']}[/]")


def print_bench(model: str, result: dict[str, Any]) -> None:
    """Init time, latency percentiles, throughput and peak memory of ``edgekit bench``."""
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


# -- convert / train / optimize --------------------------------------------------------------


def print_conversion(manifest: dict[str, Any], out_dir: str) -> None:
    """One row per artifact (size, size against fp32, parity, time), then the Edge TPU pre-flight if any."""
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
            table.add_row(a["path"], kb(a["size_bytes"]), "-", "[yellow]unchecked[/]: " + p["unavailable"], "-")
            continue
        parity = f"max abs {p['max_abs_error']:.2g}"
        if "top1_agreement" in p:
            parity += f", top-1 {p['top1_agreement']:.1%}"
        parity += " ok" if a.get("verdict") == "pass" else " [red]OUT OF TOLERANCE[/]"
        ratio = f"{a['size_bytes'] / fp32:.2f}x" if fp32 else "-"
        when = "reused" if a.get("reused") else f"{a['convert_seconds']:.1f} s"
        table.add_row(a["path"], kb(a["size_bytes"]), ratio, parity, when)
    if arts:
        out.print(table)
    if manifest.get("contract"):
        print_contract(manifest["contract"])
    preflight = (manifest.get("edgetpu") or {}).get("preflight")
    if preflight:
        total = preflight["ops_mapped"] + preflight["ops_cpu"]
        first = (f"; the CPU part starts at op {preflight['first_cpu_op_index']} ({preflight['cpu_ops'][0]}: "
                 f"{preflight['reasons'][0]['reason']})" if preflight["cpu_ops"] else "")  # fmt: skip
        out.print(f"Edge TPU pre-flight of {manifest['edgetpu']['model']}: {preflight['ops_mapped']} of {total} ops "
                  f"map{first}")  # fmt: skip


def print_contract(contract: dict[str, Any]) -> None:
    """The model's contract as a short table: each input and output, its kind and what it means."""
    from edgekit.contract import Contract

    table = Table("", "tensor", "kind", "meaning", title="contract", title_justify="left")
    for row in Contract.from_dict(contract).rows():
        table.add_row(*row)
    out.print(table)


def print_training(manifest: dict[str, Any]) -> None:
    """The metrics, precision policy, data split sizes and time of a train run."""
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


def print_optimization(source: str, manifest: dict[str, Any]) -> None:
    """Scores, sizes, sparsity and entropy before and after ``edgekit optimize``."""
    table = Table("figure", "before", "after", title=f"optimize {source}", title_justify="left")
    report = manifest["report"]
    for key in [k for k in manifest["metrics"] if k.endswith("_before")]:
        stem = key[: -len("_before")]
        table.add_row(stem, f"{manifest['metrics'][key]:.4f}", f"{manifest['metrics'][stem + '_after']:.4f}")
    for precision in ("fp32", "int8"):
        if precision not in report["after"]["artifacts"]:  # a QAT result converts to int8 only
            continue
        b, a = report["before"]["artifacts"][precision], report["after"]["artifacts"][precision]
        table.add_row(f"{precision} size / gzip", f"{kb(b['size_bytes'])} / {kb(b['gzip_bytes'])}",
                      f"{kb(a['size_bytes'])} / {kb(a['gzip_bytes'])}")  # fmt: skip
    table.add_row("int8 weight sparsity", f"{report['before']['weights']['sparsity']:.1%}",
                  f"{report['after']['weights']['sparsity']:.1%}")  # fmt: skip
    table.add_row("int8 weight entropy", f"{report['before']['weights']['entropy_bits_per_weight']:.2f} bits",
                  f"{report['after']['weights']['entropy_bits_per_weight']:.2f} bits")  # fmt: skip
    limits = ", ".join(f"{k} {v:g} ({manifest['budget']['from'][k]})" for k, v in manifest["budget"]["limits"].items())
    table.add_row("verdict", f"budget: {limits}", manifest["verdict"].replace("_", " "))
    out.print(table)


# -- doctor / validate ----------------------------------------------------------------------


def print_doctor(report: dict[str, Any]) -> None:
    """One row per package, CPU feature, target and tool: available (with its version) or why not."""
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


def print_validation(report: dict[str, Any]) -> None:
    """One row per artifact × target × threads, notes on cells not measured, recommendations, the report path."""
    from edgekit.common.metrics import agreement_figure
    from edgekit.stages.validate.report import HEADER, table_rows

    ref = report["reference"]
    note = "measured" if ref["status"] == "measured" else f"unavailable: {ref['reason']}"
    keep = ["artifact", "target", "threads", "main metric", "agreement", "p50 ms", "p90 ms", "size MB", "peak RSS MiB"]
    table = Table(*keep, title=f"validate: {report['data']['samples']} samples from {report['data']['path']}",
                  title_justify="left", caption=f"Keras reference: {note}", caption_justify="left")  # fmt: skip
    notes = []
    for r, row in zip(report["results"], table_rows(report), strict=True):
        cells = dict(zip(HEADER, row, strict=True))
        cells["artifact"] = Path(r["artifact"]).name
        if r["status"] == "checked":
            cpu = next(iter((r.get("agreement_with_cpu") or {}).values()), None)
            versus = f"; against the cpu cell: {agreement_figure(cpu)[0]} {agreement_figure(cpu)[1]:.6g}" if cpu else ""
            notes.append(f"{cells['artifact']} on pi: no latency ({r['latency_reason']}){versus}")
            cells["p50 ms"] = cells["p90 ms"] = "–"
        elif r["status"] != "measured":
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


def print_bundle(manifest: dict[str, Any], where: str, platform: str, zip_archive: bool) -> None:
    """The model a bundle holds and why, its files, its warnings (on stderr) and its zip."""
    out.print(f"{where}: {manifest['model']['file']} ({manifest['model']['precision']}, {manifest['task']}) "
              f"for {platform}: {manifest['model']['chosen_because']}")  # fmt: skip
    for name in manifest["files"]:
        out.print(f"  {name}")
    for warning in manifest["warnings"]:
        notice("warning", warning)
    if zip_archive:
        out.print(f"  and {where}.zip")


def print_predictions(results: list[dict[str, Any]]) -> None:
    """One line per input: its file name and what the model made of it."""
    from edgekit.stages.bundle.app import describe

    for r in results:
        out.print(f"{os.path.basename(r['input'])}: {describe(r)}", markup=False)


def print_verification(report: dict[str, Any]) -> None:
    """Whether the bundle is signed (and the signature valid), then one ``ok`` line per check it passed."""
    out.print(f"{'ok' if report['signature'].endswith('valid') else '--'}  {report['signature']}", markup=False)
    for check in report["checks"]:
        out.print(f"ok  {check}", markup=False)

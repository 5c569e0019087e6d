"""``make demo``: edgekit end to end on bundled data.

1. Train every recipe of the zoo on the data shipped with the project and
   convert each model (``edgekit run``): MobileNetV2 transfer learning on
   digits, the LSTM sunspot forecaster, the breast-cancer and sensor anomaly
   detectors. Metrics, conversion parity and int8 latency are printed and
   written to ``runs/demo/summary.json`` (the model cards quote it).
2. The deployment half: bundle Coral's quantized ImageNet MobileNetV2 and
   every zoo run for a Raspberry Pi (``runs/demo/bundles``), classify three
   photos through the bundle, pre-flight it for the Edge TPU, and benchmark
   it on every target (reporting the ones this machine lacks as unavailable).

Example:
    $ make demo
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import edgekit
from edgekit.runtime.targets import TARGETS

REPO = Path(__file__).resolve().parents[1]
CORAL = Path(os.environ.get("EDGEKIT_SHARED", REPO.parent / "shared")) / "coral"
console = Console(highlight=False)


def deploy(model: Path, runs: Path) -> None:
    """Bundle Coral's classifier and every zoo run for a Raspberry Pi, and classify the photos through the bundle."""
    from edgekit.stages.bundle import bundle
    from edgekit.stages.bundle.prediction import predict

    bundles = runs / "bundles"
    shutil.rmtree(bundles, ignore_errors=True)
    imagenet = bundles / "imagenet_rpi"
    bundle(model, "rpi", labels=CORAL / "imagenet_labels.txt", out=imagenet)
    title = f"edgekit predict {imagenet.relative_to(REPO)}"
    table = Table("photo", "top-1", "score", title=title, title_justify="left")
    for r in predict(imagenet, sorted((CORAL / "images").glob("*.bmp"))):
        table.add_row(Path(r["input"]).name, r["top"][0]["label"], f"{r['top'][0]['score']:.2f}")
    console.print(table)
    table = Table("run", "artifact", "task", "why", title="Raspberry Pi bundles of the zoo", title_justify="left")
    for name in RECIPES:
        m = bundle(runs / name, "rpi", out=bundles / f"{name}_rpi")
        artifact = f"{m['model']['file']} ({m['model']['precision']})"
        table.add_row(name, artifact, m["task"], m["model"]["chosen_because"])
    console.print(table)
    on_pi(imagenet)
    tpu = edgekit.inspect_model(model, target="edgetpu")["edgetpu"]
    console.print(f"Edge TPU pre-flight of {model.name}: {tpu['ops_mapped']} ops map, {tpu['ops_cpu']} stay on the "
                  f"CPU; {tpu['param_bytes_on_chip'] / 2**20:.2f} MiB of parameters on-chip")  # fmt: skip


def on_pi(folder: Path) -> None:
    """The classifier bundle where it will run: its requirements and run.py on the Pi's software stack (Debian 12
    arm64, Python 3.11; built on first use, about 30 s), against x86."""
    from edgekit.errors import EdgekitError
    from edgekit.stages.bundle.verification import verify

    try:
        with console.status("verify --target pi: the Pi's software stack (built on first use)"):
            report = verify(folder, target="pi")
    except EdgekitError as exc:
        console.print(f"[yellow]verify --target pi[/]: {exc}", highlight=False)
        return
    for check in report["checks"][-2:]:
        console.print(f"verify --target pi: ok {check}", highlight=False)


def bench_targets(model: Path) -> None:
    table = Table(
        "target", "used", "p50 ms", "p90 ms", "p99 ms", "note", title="latency, 2 threads", title_justify="left"
    )
    for target in TARGETS:
        r = edgekit.benchmark(model, threads=2, runs=50, warmup=5, target=target)
        lat = r["latency_ms"]
        note = r["unavailable_reason"] or ""
        table.add_row(target, r["target_used"], f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", note)
    console.print(table)


RECIPES = ("mobilenet_digits", "lstm_sunspots", "autoencoder_breast_cancer", "autoencoder_sensor")


def train_zoo(out: Path) -> dict:
    """``edgekit run`` on each recipe (train, convert, validate); a table of what validate measured on the test set."""
    from edgekit.pipeline import run
    from edgekit.stages.validate.report import main_figure

    summary = {}
    table = Table("recipe", "Keras test metrics", "artifacts on the test split (validate)", "int8 p50 ms",
                  "budgets", "time s", title="model zoo", title_justify="left")  # fmt: skip
    for name in RECIPES:
        start = time.perf_counter()
        with console.status(f"training, converting and validating {name}"):
            manifests = run(REPO / "models" / f"{name}.yaml", out=out / name)
        seconds = time.perf_counter() - start
        converted, validated = manifests["convert"], manifests["validate"]
        one_thread = [r for r in validated["results"] if r["threads"] == 1 and r["status"] == "measured"]
        int8 = next(r for r in one_thread if r["artifact"].endswith("int8.tflite"))
        summary[name] = {
            "metrics": manifests["train"]["metrics"],
            "precision": manifests["train"]["precision"],
            "task": manifests["train"]["task"],
            "artifacts": {
                a["precision_token"]: {"size_bytes": a["size_bytes"], "verdict": a["verdict"], "parity": a["parity"]}
                for a in converted["artifacts"]
            },
            "failed": converted["failed"],
            "warnings": converted["warnings"],
            "validate": {
                "reference": validated["reference"]["metrics"],
                "results": [
                    {k: r[k] for k in ("artifact", "threads", "metrics", "agreement", "latency_ms", "size_bytes")}
                    for r in validated["results"] if r["status"] == "measured"
                ],
                "budgets": validated["budgets"],
                "budgets_broken": [b["message"] for b in validated["budgets_broken"]],
                "recommendations": validated["recommendations"],
            },
            "int8_latency_ms": int8["latency_ms"],
            "seconds": round(seconds, 1),
        }  # fmt: skip
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in manifests["train"]["metrics"].items() if isinstance(v, float))
        figure = main_figure(validated, validated["reference"]["metrics"])[0].split(": ")[1]
        scored = f"{figure}: " + ", ".join(
            f"{Path(r['artifact']).name} {main_figure(validated, r['metrics'])[1]:.4g}" for r in one_thread
        )
        broken = validated["budgets_broken"]
        verdict = f"[red]{len(broken)} broken[/]" if broken else ("kept" if validated["budgets"] else "none set")
        for warning in converted["warnings"]:
            console.print(f"[yellow]warning[/] {name}: {warning}", markup=True, highlight=False)
        table.add_row(name, metrics, scored, f"{int8['latency_ms']['p50']:.3f}", verdict, f"{seconds:.0f}")
    console.print(table)
    for name in RECIPES:
        for message in summary[name]["validate"]["budgets_broken"]:
            console.print(f"[red]budget[/] {name}: {message}", highlight=False)
    console.print(f"reports: {out}/<recipe>/validate/report.html")
    return summary


def main() -> int:
    out = REPO / "runs" / "demo"
    start = time.perf_counter()
    summary = train_zoo(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    model = CORAL / "mobilenet_v2_1.0_224_quant.tflite"
    if not model.is_file():
        console.print(f"[red]demo data not found at {CORAL}; set EDGEKIT_SHARED[/]")
        return 2
    report = edgekit.inspect_model(model)
    console.print(
        f"[bold]{model.name}[/]: {report['format']}, {report['quantization']}, {report['ops_total']} ops, "
        f"{report['params']:,} params, {report['macs'] / 1e6:.0f} M MACs, {report['size_bytes'] / 2**20:.2f} MiB"
    )
    deploy(model, out)
    bench_targets(model)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s; summary in {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

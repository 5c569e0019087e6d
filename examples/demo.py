"""``make demo``: edgekit end to end on what the project ships and makes; nothing outside the repository needed.

1. Train every recipe of the zoo on the data shipped with the project and
   convert each model (``edgekit run``): MobileNetV2 transfer learning on
   digits, the LSTM sunspot forecaster, the breast-cancer and sensor anomaly
   detectors (the sensor's streaming files too). Metrics, conversion parity and
   int8 latency are printed and written to ``runs/demo/summary.json``.
2. The deployment half: bundle every zoo run for a Raspberry Pi
   (``runs/demo/bundles``), classify digits through the MobileNet bundle, stream
   the recorded sensor CSV through the streaming bundle one row per call,
   pre-flight the int8 MobileNet for the Edge TPU, and benchmark it on every
   target (reporting the ones this machine lacks as unavailable).
3. With Coral's public models present (``EDGEKIT_SHARED=/path/to/shared``, or
   ``make demo SHARED=/path``: a folder holding ``coral/``), the same for
   Coral's quantized ImageNet MobileNetV2 and its photos. Checked first: one
   line says what is skipped when they are absent.

Every stage prints a line when it starts and when it ends, with its time,
whether or not the output is a terminal.

Example:
    $ make demo
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import edgekit
from edgekit.runtime.targets import TARGETS

REPO = Path(__file__).resolve().parents[1]
CORAL = Path(os.environ.get("EDGEKIT_SHARED") or REPO.parent / "shared") / "coral"
# Off a terminal (CI, `| tee`) rich would lay tables out in 80 columns and cut the names apart: give them room.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
START = time.perf_counter()


@contextlib.contextmanager
def stage(what: str):
    """One line when a stage starts and one when it ends, with the times (a spinner would print nothing off a tty)."""
    began = time.perf_counter()
    console.print(f"[{began - START:6.0f} s] {what} ...", highlight=False, markup=False)
    yield
    now = time.perf_counter()
    console.print(f"[{now - START:6.0f} s] {what}: done in {now - began:.0f} s", highlight=False, markup=False)


def deploy_zoo(runs: Path) -> Path:
    """Bundle every zoo run for a Raspberry Pi; classify digits through the MobileNet bundle and stream the recorded
    sensor CSV through the sensor's streaming bundle, one row per call. Returns the bundles' folder."""
    from edgekit.stages.bundle import bundle
    from edgekit.stages.bundle.prediction import predict

    bundles = runs / "bundles"
    shutil.rmtree(bundles, ignore_errors=True)
    table = Table("run", "artifact", "task", "why", title="Raspberry Pi bundles of the zoo", title_justify="left")
    with stage("bundling the zoo for a Raspberry Pi"):
        for name in RECIPES:
            m = bundle(runs / name, "rpi", out=bundles / f"{name}_rpi")
            table.add_row(name, f"{m['model']['file']} ({m['model']['precision']})", m["task"],
                          m["model"]["chosen_because"])  # fmt: skip
        streaming = bundle(runs / "autoencoder_sensor", "rpi", out=bundles / "autoencoder_sensor_streaming_rpi",
                           streaming=True)  # fmt: skip
        table.add_row("autoencoder_sensor --streaming", streaming["model"]["file"], streaming["task"],
                      streaming["model"]["chosen_because"])  # fmt: skip
    console.print(table)
    digits = _digit_images(runs / "mobilenet_digits")
    with stage("predict: digits through the MobileNet bundle"):
        results = predict(bundles / "mobilenet_digits_rpi", digits)
    right = sum(r["top"][0]["label"] == Path(r["input"]).stem.split("_")[1] for r in results)
    console.print(f"mobilenet_digits_rpi: {right} of {len(results)} held-out digit images classified right "
                  f"(images in {digits[0].parent.relative_to(REPO)})")  # fmt: skip
    rows = np.loadtxt(REPO / "examples" / "data" / "sensor_stream.csv", delimiter=",", skiprows=1)
    np.savetxt(runs / "sensor_rows.csv", rows[:, 2:], delimiter=",", fmt="%.5f")
    with stage("predict --stream: the recorded sensor CSV through the streaming bundle, one row per call"):
        steps = predict(bundles / "autoencoder_sensor_streaming_rpi", [runs / "sensor_rows.csv"], stream=True)
    flagged = [s["row"] for s in steps if s.get("anomaly")]
    truth = rows[:, 1].astype(bool)
    console.print(f"autoencoder_sensor streaming: {len(flagged)} of {len(steps)} rows flagged (first at row "
                  f"{flagged[0] if flagged else '-'}; the recording's first injected anomaly is at row "
                  f"{int(np.argmax(truth))})")  # fmt: skip
    return bundles


def _digit_images(run: Path, count: int = 10) -> list[Path]:
    """The first held-out test digits of the MobileNet run (8x8, 0..255) as PNG files named ``<n>_<label>.png``."""
    from PIL import Image

    folder = run / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    labels = json.loads((run / "manifest.json").read_text())["task"]["labels"]
    with np.load(run / "test.npz") as test:
        x, y = test["x"][:count], test["y"][:count]
    paths = []
    for n, (image, label) in enumerate(zip(x, y, strict=True)):
        path = folder / f"{n}_{labels[int(label)]}.png"
        Image.fromarray(np.clip(image[..., 0], 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def deploy_coral(model: Path, runs: Path) -> None:
    """Coral's quantized ImageNet MobileNetV2: bundle it for a Raspberry Pi, classify the photos, run it on the Pi's
    software stack, pre-flight it for the Edge TPU."""
    from edgekit.stages.bundle import bundle
    from edgekit.stages.bundle.prediction import predict

    imagenet = runs / "bundles" / "imagenet_rpi"
    with stage("bundling Coral's ImageNet MobileNetV2 and classifying its photos"):
        bundle(model, "rpi", labels=CORAL / "imagenet_labels.txt", out=imagenet)
        results = predict(imagenet, sorted((CORAL / "images").glob("*.bmp")))
    table = Table("photo", "top-1", "score", title=f"edgekit predict {imagenet.relative_to(REPO)}",
                  title_justify="left")  # fmt: skip
    for r in results:
        table.add_row(Path(r["input"]).name, r["top"][0]["label"], f"{r['top'][0]['score']:.2f}")
    console.print(table)
    on_pi(imagenet)
    preflight(model)


def preflight(model: Path) -> None:
    """The Edge TPU pre-flight of a full-int8 file: how the compiler would partition it."""
    tpu = edgekit.inspect_model(model, target="edgetpu")["edgetpu"]
    first = (tpu.get("reasons") or [{}])[0]
    why = f"; the first on the CPU: {first['op']} ({first['reason']})" if first else ""
    console.print(f"Edge TPU pre-flight of {model.name}: {tpu['ops_mapped']} ops map, {tpu['ops_cpu']} stay on the "
                  f"CPU; {tpu['param_bytes_on_chip'] / 2**20:.2f} MiB of parameters on-chip{why}",
                  highlight=False, markup=False)  # fmt: skip


def on_pi(folder: Path) -> None:
    """The classifier bundle where it will run: its requirements and run.py on the Pi's software stack (Debian 12
    arm64, Python 3.11; built on first use, about 30 s), against x86."""
    from edgekit.errors import EdgekitError
    from edgekit.stages.bundle.verification import verify

    try:
        with stage("verify --target pi: the bundle on the Pi's software stack (built on first use)"):
            report = verify(folder, target="pi")
    except EdgekitError as exc:
        console.print(f"[yellow]verify --target pi[/]: {exc}", highlight=False)
        return
    for check in report["checks"][-2:]:
        console.print(f"verify --target pi: ok {check}", highlight=False)


def bench_targets(model: Path) -> None:
    """``edgekit bench`` of ``model`` on every target, 2 threads; a target this machine lacks says why."""
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
        with stage(f"{name}: training, converting and validating"):
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
    coral = CORAL / "mobilenet_v2_1.0_224_quant.tflite"
    if coral.is_file():
        console.print(f"Coral's public models: {CORAL} (its ImageNet classifier is bundled and run too)")
    else:
        console.print(f"Coral's public models: not found at {CORAL}; the parts that use them (an ImageNet "
                      "classifier and its photos) are skipped: add them with EDGEKIT_SHARED=/path/to/shared make "
                      "demo (a folder holding coral/)", highlight=False, markup=False)  # fmt: skip
    summary = train_zoo(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    bundles = deploy_zoo(out)
    int8 = next((out / "mobilenet_digits" / "convert").glob("*_int8.tflite"))
    preflight(int8)
    if coral.is_file():
        deploy_coral(coral, out)
    with stage(f"bench {int8.relative_to(REPO)} on every target"):
        bench_targets(int8)
    console.print(f"made: runs in {out.relative_to(REPO)}/<recipe> (model.keras, convert/, validate/report.html), "
                  f"bundles in {bundles.relative_to(REPO)}, summary in {(out / 'summary.json').relative_to(REPO)}",
                  highlight=False, markup=False)  # fmt: skip
    console.print(f"demo finished in {time.perf_counter() - START:.0f} s", highlight=False)
    return 0


if __name__ == "__main__":
    from edgekit.runtime.native import native_output_captured

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_output_captured():  # TensorFlow's and LiteRT's own log lines stay off the screen; Python's print
        code = main()
    sys.exit(code)

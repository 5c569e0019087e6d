"""``make demo``: edgekit end to end on bundled data.

Today the pipeline's runtime half runs on real Coral models: inspect a
quantized ImageNet MobileNetV2, classify three photos with it, and benchmark
it on every target (reporting the ones this machine lacks as unavailable).
Later stages (train → optimize → convert → validate → bundle) join here as they land.

Example:
    $ make demo
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

import edgekit
from edgekit.runtime.targets import TARGETS

REPO = Path(__file__).resolve().parents[1]
CORAL = Path(os.environ.get("EDGEKIT_SHARED", REPO.parent / "shared")) / "coral"
console = Console(highlight=False)


def classify_photos(model: Path) -> None:
    labels = (CORAL / "imagenet_labels.txt").read_text().splitlines()
    runner = edgekit.load(model, threads=2)
    size = runner.inputs[0].shape[1]
    table = Table("photo", "top-1", "score", title=f"{model.name} on {runner.backend}", title_justify="left")
    for photo in sorted((CORAL / "images").glob("*.bmp")):
        image = np.asarray(Image.open(photo).convert("RGB").resize((size, size)))[None]
        probs = runner.run(image)[0][0]
        table.add_row(photo.name, labels[int(probs.argmax())], f"{probs.max():.2f}")
    console.print(table)


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


def main() -> int:
    model = CORAL / "mobilenet_v2_1.0_224_quant.tflite"
    if not model.is_file():
        console.print(f"[red]demo data not found at {CORAL}; set EDGEKIT_SHARED[/]")
        return 2
    report = edgekit.inspect_model(model)
    console.print(
        f"[bold]{model.name}[/]: {report['format']}, {report['quantization']}, {report['ops_total']} ops, "
        f"{report['params']:,} params, {report['macs'] / 1e6:.0f} M MACs, {report['size_bytes'] / 2**20:.2f} MiB"
    )
    classify_photos(model)
    bench_targets(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())

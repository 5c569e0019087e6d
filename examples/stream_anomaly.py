"""A streaming anomaly detector: sensor rows from a CSV file or stdin, scored as they arrive with a bundle.

A streaming bundle (``edgekit bundle RUN --platform rpi --streaming``) takes one row per call and keeps the
recurrent state between calls; its score is the windowed model's reduction of the last ``steps`` rows' errors,
so every row gets a verdict once that many rows have come, for one cheap step each. A windowed bundle keeps the
last ``steps`` rows and re-runs the whole window (a feature model scores each row). Prints one line per scored
row (every ``--every`` rows): its number, the anomaly score, the verdict against the bundle's threshold. Needs
only the bundle and its requirements: it imports the bundle's own ``run.py``.

Example:
    $ tail -f /var/log/sensor.csv | python examples/stream_anomaly.py bundles/sensor_streaming - --every 8
    row 64 score 0.41 normal
    row 72 score 3.90 ANOMALY
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
from pathlib import Path

import numpy as np
from pi_classifier import load_bundle_app


def rows(source: str):
    """(number, values) of each numeric row of a CSV file or stdin (``-``), numbered from 1; a header is skipped."""
    handle = sys.stdin if source == "-" else open(source, newline="")  # noqa: SIM115 - closed below
    count = 0
    try:
        for line, row in enumerate(csv.reader(handle), start=1):
            try:
                values = [float(v) for v in row if v.strip()]
            except ValueError:
                if line > 1:
                    raise SystemExit(f"stream_anomaly: error: line {line} is not numbers: {row[:4]}") from None
                continue
            count += 1
            yield count, values
    finally:
        if handle is not sys.stdin:
            handle.close()


def windowed(app, manifest: dict, interp, numbered, every: int):
    """(row number, result) of every ``every``-th row once a windowed bundle's window is full: its last ``steps``
    rows re-run."""
    item = manifest["inputs"][0]
    pre = item["preprocessing"]
    steps = pre.get("steps", 1) if pre["kind"] == "window" else 1
    width = pre.get("channels") if pre["kind"] == "window" else int(np.prod(item["shape"][1:]))
    window: collections.deque = collections.deque(maxlen=steps)
    for n, row in numbered:
        if len(row) < width:
            raise app.BundleError(f"row {n} has {len(row)} values; the model takes {width} per row")
        window.append(row[-width:])
        if len(window) == steps and n % every == 0:
            values = np.asarray(window, np.float32).reshape(item["shape"][1:])
            outputs = app.run_batch(interp, manifest, [app.values_input(values, item)])
            yield n, app.postprocess(outputs, manifest, None)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("source", help="CSV file, or - for stdin")
    parser.add_argument("--every", type=int, default=1, help="print every N-th row (numbered from 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per printed row")
    args = parser.parse_args(argv)
    app = load_bundle_app(args.bundle)
    try:
        manifest = app.load_manifest(args.bundle)
        app.check_files(args.bundle, manifest)
        if manifest["task"] != "anomaly_scorer":
            raise app.BundleError(f"{args.bundle}: a {manifest['task']} bundle, not an anomaly scorer")
        interp = app.open_interpreter(args.bundle, manifest, threads=2)
        if app.state_pairs(manifest):  # a streaming model: one step per row, its state kept
            stepper = app.Stepper(manifest, lambda feeds: app.run_batch(interp, manifest, feeds))
            scored = ((n, stepper.push(row[-stepper.width :])) for n, row in rows(args.source))
        else:
            scored = windowed(app, manifest, interp, rows(args.source), args.every)
        for n, result in scored:
            if result["anomaly"] is None or n % args.every:  # warming up, or not a row to print
                continue
            if args.json:
                print(json.dumps({"row": n, **result}), flush=True)
            else:
                print(f"row {n} score {result['score']:.3f} {'ANOMALY' if result['anomaly'] else 'normal'}", flush=True)
    except app.BundleError as exc:
        print(f"stream_anomaly: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

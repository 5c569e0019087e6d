"""A streaming anomaly detector: sensor rows from a CSV file or stdin, scored window by window with a bundle.

Keeps the last ``steps`` rows (the window the bundled model takes; a feature model scores
each row), and prints one line per scored window: its last row number, the anomaly score and
the verdict against the bundle's threshold. Needs only the bundle and its requirements: it
imports the bundle's own ``run.py``.

Example:
    $ tail -f /var/log/sensor.csv | python examples/stream_anomaly.py bundles/sensor_rpi - --every 8
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("source", help="CSV file, or - for stdin")
    parser.add_argument("--every", type=int, default=1, help="score every N rows once the window is full")
    parser.add_argument("--json", action="store_true", help="one JSON object per scored window")
    args = parser.parse_args(argv)
    app = load_bundle_app(args.bundle)
    try:
        manifest = app.load_manifest(args.bundle)
        app.check_files(args.bundle, manifest)
        if manifest["task"] != "anomaly_scorer":
            raise app.BundleError(f"{args.bundle}: a {manifest['task']} bundle, not an anomaly scorer")
        interp = app.open_interpreter(args.bundle, manifest, threads=2)
        item = manifest["inputs"][0]
        pre = item["preprocessing"]
        steps = pre.get("steps", 1) if pre["kind"] == "window" else 1
        width = pre.get("channels") if pre["kind"] == "window" else int(np.prod(item["shape"][1:]))
        window: collections.deque = collections.deque(maxlen=steps)
        since = 0
        for n, row in rows(args.source):
            if len(row) < width:
                raise app.BundleError(f"row {n} has {len(row)} values; the model takes {width} per row")
            window.append(row[-width:])
            since += 1
            if len(window) < steps or since < args.every:
                continue
            since = 0
            values = np.asarray(window, np.float32).reshape(item["shape"][1:])
            outputs = app.run_batch(interp, manifest, [app.values_input(values, item)])
            result = {"row": n, **app.postprocess(outputs, manifest, None)[0]}
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(f"row {n} score {result['score']:.3f} {'ANOMALY' if result['anomaly'] else 'normal'}", flush=True)
    except app.BundleError as exc:
        print(f"stream_anomaly: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make fuzz N=...``: run N mutated cases through edgekit's CLI; write ``bench/results.json → fuzz``.

Example:
    $ python -m tests.fuzz --cases 2000 --out bench/results.json --keep
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.fuzz.harness import run_cases
from tests.fuzz.mutators import MUTATORS, Case, Seeds

log = logging.getLogger("edgekit.fuzz")


def cases(seed: int, count: int, targets: list[str], seeds: Seeds) -> Iterator[Case]:
    """``count`` cases, round-robin over ``targets``, each from its own seeded generator (reproducible one by one)."""
    for number, target in zip(range(count), itertools.cycle(targets)):
        yield MUTATORS[target](random.Random(f"{seed}:{number}"), seeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default=",".join(MUTATORS))
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a case may take")
    parser.add_argument("--out", type=Path, default=None, help="a results.json whose `fuzz` key is (re)written")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--keep", action="store_true", help="save crashing and failing cases as regressions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    shared = Path(os.environ.get("EDGEKIT_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    with tempfile.TemporaryDirectory(prefix="edgekit-fuzz-") as tmp:
        work = Path(tmp)
        seeds = Seeds.build(shared, work)
        targets = args.targets.split(",")
        summary = run_cases(cases(args.seed, args.cases, targets, seeds), work / "cases", timeout=args.timeout,
                            keep=args.keep)  # fmt: skip
    summary["seed"] = args.seed
    for failure in summary["failures"][:20]:
        log.info("FAIL %s %s %s: %s", failure["target"], failure["mutation"], failure["problems"], failure["stderr"])
    log.info("%s", json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.out:
        results = json.loads(args.out.read_text()) if args.out.is_file() else {}
        results["fuzz"] = {**summary, "failures": summary["failures"][:50], "failure_count": len(summary["failures"])}
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run one ``python -m`` job of the validation in a fresh process, and say how it failed if it did.

A measuring cell and the Keras reference each run in a child: a native crash or a hang fails
that job, not ``validate``.

Example:
    >>> run_module("edgekit.stages.validate.cell", ["missing.json", "r.json"], expect=Path("r.json"))  # doctest: +SKIP
    "exited 1: FileNotFoundError: [Errno 2] No such file or directory: 'missing.json'"
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def run_module(module: str, args: list[str], *, expect: Path, timeout: float = 1800) -> str | None:
    """Run ``python -m module *args``; None when it exited 0 and wrote ``expect``, else how it failed.

    Example:
        >>> run_module("json.tool", ["--help"], expect=Path("/nonexistent"))
        'exited 0 without writing /nonexistent'
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              timeout=timeout, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"gave no result within {timeout:.0f} s"
    if proc.returncode < 0:
        return f"crashed ({signal.Signals(-proc.returncode).name})"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return f"exited {proc.returncode}: {lines[-1] if lines else 'no message'}"
    return None if expect.is_file() else f"exited 0 without writing {expect}"

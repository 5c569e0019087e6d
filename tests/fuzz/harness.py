"""Run fuzz cases through edgekit's CLI, each in its own forked process, and judge every outcome.

The harness process imports the runtime lane once; each case is a fork that runs ``edgekit.cli.app.main``
on the case's files, as ``edgekit`` itself runs a command in a child (:func:`edgekit.cli.app.run`). The
harness waits as the CLI's guard does and maps the wait status with the guard's own
:func:`~edgekit.cli.app.exit_code_of`: the exit code below is what a user would see. A case fails when:

- it exits with a code edgekit does not document (1: internal error, 130, ...), or a signal reaches the user;
- its exit 2 is not one line on stderr, or any output holds a traceback;
- it runs over ``timeout`` seconds (killed) or its peak memory is over ``max_rss_mb``;
- its output holds the canary text of a file outside the bundle;
- a signed bundle changed after signing exits 0 with the public key given.

Crashes of the runtime that the guard turned into exit 2 are counted (``runtime_crashes``) and their files
kept under ``tests/fuzz/regressions/``, as is every failing case.

Example:
    >>> summary = run_cases(cases, Path("/tmp/fuzz"))  # doctest: +SKIP
    >>> summary["failures"]  # doctest: +SKIP
    []
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fuzz.mutators import CANARY, Case

DOCUMENTED_EXITS = {0, 2, 3, 4}
REGRESSIONS = Path(__file__).with_name("regressions")
MEMORY_CAP = 8 << 30  # address space of a case: far above the 2 GB it may use, below what stops this machine
MAX_KEPT_BYTES = 1 << 20  # a regression file kept in the repository: small seeds' mutations only


@dataclass
class Outcome:
    """What one case did."""

    case: Case
    exit_code: int
    signal: str | None  # the signal that ended the command's process (the guard turned it into exit 2)
    seconds: float
    max_rss_mb: float
    stdout: str
    stderr: str
    timed_out: bool

    def problems(self, max_seconds: float, max_rss_mb: float) -> list[str]:
        """Why this outcome breaks the harness's rules (empty: it does not)."""
        found = []
        if self.timed_out:
            found.append(f"over {max_seconds:.0f} s")
        elif self.exit_code not in DOCUMENTED_EXITS:
            found.append(f"exit {self.exit_code}")
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        if self.exit_code == 2 and not self.timed_out and not self.signal and len(lines) != 1:  # a signal: the
            # guard's one line is printed by the waiting process (here, the harness), not the command
            found.append(f"exit 2 with {len(lines)} lines on stderr")
        if "Traceback" in self.stderr or "Traceback" in self.stdout:
            found.append("a traceback")
        if self.max_rss_mb > max_rss_mb:
            found.append(f"{self.max_rss_mb:.0f} MB of memory")
        if CANARY in self.stdout or CANARY in self.stderr:
            found.append("printed a file outside the bundle")
        if self.case.tampered_with_key and self.exit_code == 0:
            found.append("accepted a tampered bundle given the key")
        return found


def _write(case: Case, folder: Path) -> None:
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if (link := case.meta.get("symlink")) and (folder / "bundle").is_dir():
        (folder / "bundle" / link).symlink_to("../secret.txt")


def _child(case: Case, folder: Path) -> None:
    """In the forked process: run the command with stdout / stderr in files, never return."""
    try:
        os.chdir(folder)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            out = os.open(folder / f".{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
        os.setpgid(0, 0)
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))  # this machine survives a runaway case
        from edgekit.cli.app import main

        code = main(list(case.argv))
    except BaseException:
        code = 99
    os._exit(code)


def _run_one(case: Case, folder: Path, timeout: float) -> Outcome:
    from edgekit.cli.app import exit_code_of

    _write(case, folder)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(case, folder)
    pidfd = os.pidfd_open(pid)
    timed_out = not select.select([pidfd], [], [], timeout)[0]
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)  # the command and anything it started
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    os.close(pidfd)
    seconds = time.perf_counter() - start
    ended_by = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) and not timed_out else None
    stdout = (folder / ".stdout").read_text(errors="replace")
    stderr = (folder / ".stderr").read_text(errors="replace")
    return Outcome(case, exit_code_of(status) if not timed_out else -9, ended_by, seconds, usage.ru_maxrss / 1024,
                   stdout, stderr, timed_out)  # fmt: skip


def keep_regression(outcome: Outcome, why: list[str]) -> Path | None:
    """Save a failing or crashing case's files and command under ``tests/fuzz/regressions/`` (small ones)."""
    if sum(len(v) for v in outcome.case.files.values()) > MAX_KEPT_BYTES:
        return None
    import hashlib

    digest = hashlib.sha256(json.dumps(outcome.case.argv).encode() + b"".join(outcome.case.files.values()))
    folder = REGRESSIONS / f"{outcome.case.target}-{digest.hexdigest()[:12]}"
    if folder.exists():
        return folder
    for name, data in outcome.case.files.items():
        (folder / "files" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "files" / name).write_bytes(data)
    case = outcome.case
    record = {"argv": case.argv, "mutation": case.mutation, "found": why or [outcome.signal],
              "symlink": case.meta.get("symlink"), "tampered_with_key": case.tampered_with_key}  # fmt: skip
    (folder / "case.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _warm_up() -> None:
    """Import what the commands use once, here, so each forked case starts with it loaded (as a long-lived
    process would), and cases are ~50 ms rather than an import each."""
    import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    import onnxruntime  # noqa: F401
    import PIL.Image  # noqa: F401
    from ai_edge_litert import interpreter  # noqa: F401

    import edgekit.bench
    import edgekit.cli
    import edgekit.inspection
    import edgekit.stages.bundle.prediction
    import edgekit.stages.bundle.verification  # noqa: F401


def run_cases(
    cases: Iterable[Case], work: Path, *, timeout: float = 30.0, max_rss_mb: float = 2048.0, keep: bool = False
) -> dict[str, Any]:
    """Run ``cases`` (made one at a time) in ``work``; the summary per target and the failures (``keep``: save them).

    Example:
        >>> run_cases([], Path("/tmp/fuzz"))["cases"]
        0
    """
    per_target: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    _warm_up()
    start = time.perf_counter()
    number = -1
    for number, case in enumerate(cases):
        folder = work / f"case-{number}"
        folder.mkdir(parents=True)
        outcome = _run_one(case, folder, timeout)
        shutil.rmtree(folder, ignore_errors=True)
        t = per_target.setdefault(case.target, {"cases": 0, "exits": Counter(), "runtime_crashes": Counter(),
                                                "max_seconds": 0.0, "max_rss_mb": 0.0})  # fmt: skip
        t["cases"] += 1
        t["exits"][str(outcome.exit_code)] += 1
        if outcome.signal:
            t["runtime_crashes"][outcome.signal] += 1
        t["max_seconds"] = max(t["max_seconds"], round(outcome.seconds, 2))
        t["max_rss_mb"] = max(t["max_rss_mb"], round(outcome.max_rss_mb, 1))
        why = outcome.problems(timeout, max_rss_mb)
        if why:
            failures.append({"case": number, "target": case.target, "mutation": case.mutation, "argv": case.argv,
                             "problems": why,
                             "stderr": outcome.stderr.strip()[-300:]})  # fmt: skip
        if keep and (why or outcome.signal):
            keep_regression(outcome, why)
    for t in per_target.values():
        t["exits"], t["runtime_crashes"] = dict(sorted(t["exits"].items())), dict(t["runtime_crashes"])
    return {"cases": number + 1, "seconds": round(time.perf_counter() - start, 1), "targets": per_target,
            "failures": failures}  # fmt: skip

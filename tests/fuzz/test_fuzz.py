"""Issue 21: a fast sample of the fuzz harness (``make fuzz`` runs thousands), and every kept regression replayed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.harness import REGRESSIONS
from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.slow  # builds ONNX seeds with the onnx package (the build lane)


def test_a_fuzz_sample_ends_every_case_as_documented(tmp_path):
    """400 mutated models, bundles and inputs, one process forking one per case (it survives their crashes): every
    case exits 0, 2, 3 or 4 with one line for an error, within 30 s and 2 GB, reads nothing outside its bundle, and
    no tampered signed bundle passes with the key. The sample explores: each target has cases edgekit accepts and
    cases it refuses."""
    out = tmp_path / "fuzz.json"
    r = subprocess.run([sys.executable, "-m", "tests.fuzz", "--cases", "400", "--seed", "0", "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)  # fmt: skip
    summary = json.loads(out.read_text())
    assert summary["failures"] == [], r.stderr[-3000:]
    assert summary["cases"] == 400 and r.returncode == 0
    for target, figures in summary["targets"].items():
        assert figures["cases"] == 100 and {"0", "2"} <= set(figures["exits"]), (target, figures)


@pytest.mark.parametrize("case", sorted(p.parent.name for p in REGRESSIONS.glob("*/case.json")) or ["none"])
def test_kept_fuzz_cases_are_refused_before_the_runtime(case: str, tmp_path: Path) -> None:
    """A case the harness kept (a runtime crash the guard caught, or a failure) now exits 2 in one line, refused by
    edgekit itself: not a crash of the runtime, not an internal error."""
    if case == "none":
        pytest.skip("no fuzz regressions kept")
    folder = REGRESSIONS / case
    record = json.loads((folder / "case.json").read_text())
    for path in (folder / "files").rglob("*"):
        if path.is_file():
            (tmp_path / path.relative_to(folder / "files")).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path.relative_to(folder / "files")).write_bytes(path.read_bytes())
    if record.get("symlink") and (tmp_path / "bundle").is_dir():
        os.symlink("../secret.txt", tmp_path / "bundle" / record["symlink"])
    r = run_cli(*record["argv"], cwd=tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, (record, r.stderr)
    assert "crashed" not in lines[0] and "internal error" not in lines[0], (record, lines[0])

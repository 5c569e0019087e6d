"""Shared fixtures: the Coral models in ../shared/coral and a CLI runner in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEKIT_SHARED", REPO.parent / "shared"))
CORAL = SHARED / "coral"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run ``python -m edgekit ARGS`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def by_token(manifest: dict) -> dict[str, dict]:
    """A convert manifest's artifacts by their ``--to`` token."""
    return {a["precision_token"]: a for a in manifest["artifacts"]}


@pytest.fixture(scope="session")
def coral() -> Path:
    if not (CORAL / "mobilenet_v1_0.25_128_quant.tflite").is_file():
        pytest.skip(f"Coral test data not found at {CORAL} (set EDGEKIT_SHARED)")
    return CORAL


@pytest.fixture(scope="session")
def mobilenet_run(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped MobileNet transfer recipe trained once per session (about two minutes on two cores)."""
    from edgekit.train import train

    out = tmp_path_factory.mktemp("mobilenet_digits") / "run"
    return out, train(REPO / "models" / "mobilenet_digits.yaml", out=out)


@pytest.fixture(scope="session")
def sensor_run(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped sensor anomaly recipe run once per session: train, convert, validate (about 80 s)."""
    from edgekit.train import run

    out = tmp_path_factory.mktemp("autoencoder_sensor") / "run"
    return out, run(REPO / "models" / "autoencoder_sensor.yaml", out=out)


@pytest.fixture(scope="session")
def forecaster(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped sunspot LSTM recipe trained once per session (a few seconds)."""
    from edgekit.train import train

    out = tmp_path_factory.mktemp("lstm") / "run"
    return out, train(REPO / "models" / "lstm_sunspots.yaml", out=out)

"""Session fixtures, visible to every test folder: the Coral models in ../shared/coral and the zoo runs.

Helpers (paths, the CLI runner) live in :mod:`tests.helpers`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import CORAL, REPO


@pytest.fixture(scope="session")
def coral() -> Path:
    if not (CORAL / "mobilenet_v1_0.25_128_quant.tflite").is_file():
        pytest.skip(f"Coral test data not found at {CORAL} (set EDGEKIT_SHARED)")
    return CORAL


@pytest.fixture(scope="session")
def mobilenet_run(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped MobileNet transfer recipe trained once per session (about two minutes on two cores)."""
    from edgekit.stages.train import train

    out = tmp_path_factory.mktemp("mobilenet_digits") / "run"
    return out, train(REPO / "models" / "mobilenet_digits.yaml", out=out)


@pytest.fixture(scope="session")
def sensor_run(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped sensor anomaly recipe run once per session: train, convert, validate (about 80 s)."""
    from edgekit.pipeline import run

    out = tmp_path_factory.mktemp("autoencoder_sensor") / "run"
    return out, run(REPO / "models" / "autoencoder_sensor.yaml", out=out)


@pytest.fixture(scope="session")
def forecaster(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped sunspot LSTM recipe trained once per session (a few seconds)."""
    from edgekit.stages.train import train

    out = tmp_path_factory.mktemp("lstm") / "run"
    return out, train(REPO / "models" / "lstm_sunspots.yaml", out=out)

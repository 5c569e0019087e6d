"""Shared fixtures for tests that need real targets: the Coral models in ../shared/coral."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORAL = Path(os.environ.get("EDGEKIT_SHARED", REPO.parent / "shared")) / "coral"


@pytest.fixture(scope="session")
def coral() -> Path:
    if not (CORAL / "mobilenet_v2_1.0_224_quant.tflite").is_file():
        pytest.skip(f"Coral test data not found at {CORAL} (set EDGEKIT_SHARED)")
    return CORAL

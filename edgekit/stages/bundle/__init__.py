"""The bundle stage (runtime lane, no TensorFlow): deployment bundles, and the commands that use them.

:func:`bundle` packs one for Raspberry Pi, Coral, Android or iOS; :func:`predict` runs one on inputs;
:func:`verify` checks one where it will run. The parts: ``spec`` (``edgekit.json`` and its JSON Schema),
``app`` (the bundles' ``run.py``), ``templates``, ``archive``, ``loader``; the metadata inside
the ``.tflite`` is :mod:`edgekit.formats.metadata`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "bundle": "edgekit.stages.bundle.driver",
    "predict": "edgekit.stages.bundle.prediction",
    "verify": "edgekit.stages.bundle.verification",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy, so a child process that imports one module loads only that one
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgekit.stages.bundle' has no attribute {name!r}")

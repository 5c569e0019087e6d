"""The convert stage: Keras → TFLite / ONNX artifacts, each checked against its source.

A pipeline of small steps: inputs → plan → convert (child process) → check → target steps.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "convert": "edgekit.stages.convert.driver",
    "ConvertSettings": "edgekit.stages.convert.settings",
    "check_artifact": "edgekit.stages.convert.check",
    "WrongArtifactError": "edgekit.stages.convert.check",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy, so a child process that imports one module loads only that one
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgekit.stages.convert' has no attribute {name!r}")

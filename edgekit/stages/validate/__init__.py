"""The validate stage (runtime lane, no TensorFlow): every artifact × target × thread count scored on labelled
data beside the Keras reference, checked against budgets, and reported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "validate": "edgekit.stages.validate.driver",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy, so a child process that imports one module loads only that one
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgekit.stages.validate' has no attribute {name!r}")

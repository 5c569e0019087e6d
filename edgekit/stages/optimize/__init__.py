"""The optimize stage: pruning, clustering and QAT through the tf_keras bridge, and what they bought.

The passes run in :mod:`edgekit.build.optimize`; the driver and the measures are runtime lane.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OptimizeSettings": "edgekit.stages.optimize.settings",
    "optimize_model": "edgekit.stages.optimize.driver",
    "measure": "edgekit.stages.optimize.measures",
    "weight_stats": "edgekit.stages.optimize.measures",
    "gzip_size": "edgekit.stages.optimize.measures",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy, so a child process that imports one module loads only that one
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgekit.stages.optimize' has no attribute {name!r}")

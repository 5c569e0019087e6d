"""The optimize stage: pruning, clustering and QAT through the tf_keras bridge, and what they bought.

The passes run in :mod:`edgekit.buildlane.optimize`; the driver and the measures are runtime lane.
"""

from edgekit.common.lazy import lazy_exports

# Imported on first use, so a child process that needs one module of the stage loads only that one.
__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "OptimizeSettings": "edgekit.stages.optimize.settings",
        "optimize_model": "edgekit.stages.optimize.driver",
        "measure": "edgekit.stages.optimize.measures",
        "weight_stats": "edgekit.stages.optimize.measures",
        "gzip_size": "edgekit.stages.optimize.measures",
    },
)

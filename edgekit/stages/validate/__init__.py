"""The validate stage (runtime lane, no TensorFlow): every artifact × target × thread count scored on labelled
data beside the Keras reference, checked against budgets, and reported.
"""

from edgekit.common.lazy import lazy_exports

# Imported on first use, so a child process that needs one module of the stage loads only that one.
__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "validate": "edgekit.stages.validate.driver",
    },
)

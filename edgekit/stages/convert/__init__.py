"""The convert stage: Keras → TFLite / ONNX artifacts, each checked against its source.

A pipeline of small steps: inputs → plan → convert (child process) → check → target steps.
"""

from edgekit.common.lazy import lazy_exports

# Imported on first use, so a child process that needs one module of the stage loads only that one.
__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "convert": "edgekit.stages.convert.driver",
        "ConvertSettings": "edgekit.stages.convert.settings",
        "check_artifact": "edgekit.stages.convert.check",
        "WrongArtifactError": "edgekit.stages.convert.check",
    },
)

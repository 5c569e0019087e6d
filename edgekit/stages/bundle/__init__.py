"""The bundle stage (runtime lane, no TensorFlow): deployment bundles, and the commands that use them.

:func:`bundle` packs one for Raspberry Pi, Coral, Android or iOS; :func:`predict` runs one on inputs;
:func:`verify` checks one where it will run. The parts: ``spec`` (``edgekit.json`` and its JSON Schema),
``app`` (the bundles' ``run.py``), ``templates``, ``archive``, ``loader``; the metadata inside
the ``.tflite`` is :mod:`edgekit.formats.metadata`.
"""

from edgekit.common.lazy import lazy_exports

# Imported on first use, so a child process that needs one module of the stage loads only that one.
__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "bundle": "edgekit.stages.bundle.driver",
        "predict": "edgekit.stages.bundle.prediction",
        "verify": "edgekit.stages.bundle.verification",
        "keygen": "edgekit.stages.bundle.signing",
    },
)

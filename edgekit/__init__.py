"""edgekit: take Keras models to edge devices.

The top level stays light: it imports neither TensorFlow nor a runtime until
a function needs one.

Example:
    >>> import edgekit
    >>> runner = edgekit.load("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "benchmark", "inspect_model", "load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from edgekit.runtime import load

        return load
    if name == "inspect_model":
        from edgekit.inspection import inspect_model

        return inspect_model
    if name == "benchmark":
        from edgekit.bench import benchmark

        return benchmark
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")

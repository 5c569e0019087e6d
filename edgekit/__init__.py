"""edgekit: take Keras models to edge devices.

The top level stays light: it imports neither TensorFlow nor a runtime until
a function needs one. Every command of the CLI is a function here:

- runtime lane: :func:`load`, :func:`inspect_model`, :func:`benchmark`, :func:`validate`, :func:`bundle`,
  :func:`predict`, :func:`verify`, :func:`keygen`;
- build lane (TensorFlow is imported when they run): :func:`train`, :func:`run`, :func:`optimize`,
  :func:`convert`;
- :func:`set_limits` raises the limits on what edgekit reads (:mod:`edgekit.limits`);
- :class:`ConvertSettings`, :class:`OptimizeSettings` and :class:`Budgets`: the settings those functions take.

Each function takes the CLI command's options under the same names (``--zip`` is ``zip=``), and one path
wherever the command takes several.

Example:
    >>> import edgekit
    >>> runner = edgekit.load("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")  # doctest: +SKIP
    >>> record = edgekit.convert("model.keras", "runs/m", to="tflite:fp32")  # doctest: +SKIP
"""

from __future__ import annotations

from edgekit.common.lazy import lazy_exports

__version__ = "0.1.0"

_API = {
    "load": "edgekit.runtime",
    "inspect_model": "edgekit.inspection",
    "benchmark": "edgekit.bench",
    "convert": "edgekit.stages.convert",
    "train": "edgekit.stages.train",
    "run": "edgekit.pipeline",
    "optimize": "edgekit.pipeline",
    "validate": "edgekit.stages.validate",
    "bundle": "edgekit.stages.bundle",
    "predict": "edgekit.stages.bundle",
    "verify": "edgekit.stages.bundle",
    "keygen": "edgekit.stages.bundle",
    "set_limits": "edgekit.limits",
    # the settings objects the functions take (settings=...), and the budgets validate gates on
    "ConvertSettings": "edgekit.stages.convert.settings",
    "OptimizeSettings": "edgekit.stages.optimize.settings",
    "Budgets": "edgekit.common.budgets",
}
__getattr__, _names = lazy_exports(__name__, _API)
__all__ = ["__version__", *_names]

"""Keras → TFLite for each precision: fp32, fp16, dynamic-range int8, full int8, 16x8.

Example:
    >>> blob = to_tflite(model, "int8", calibration=x, batch=1)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

from edgekit.common.calibration import Feeds, count
from edgekit.converters.source import input_specs, output_names, serving_function
from edgekit.errors import ConversionError, UnsupportedOpError
from edgekit.formats.tflite import name_io_in_order
from edgekit.runtime.specs import TensorSpec

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "16x8")


def to_tflite(model: Any, precision: str, **options: Any) -> bytes:
    """Convert a Keras (3 or tf_keras) model to TFLite bytes at ``precision``; ``options`` are those of
    :func:`tflite_converter`.

    The file's inputs and outputs carry the Keras names (``inputs`` / ``outputs``, default: the model's own),
    in Keras order.

    Example:
        >>> to_tflite(model, "fp16")[4:8]  # doctest: +SKIP
        b'TFL3'
    """
    specs = options.pop("inputs", None) or input_specs(model)
    names = options.pop("outputs", None) or output_names(model)
    converter = tflite_converter(model, precision, inputs=specs, outputs=names, **options)
    try:
        blob = bytes(converter.convert())
    except Exception as exc:
        raise _explain(exc, precision) from None
    return name_io_in_order(blob, [s.name for s in specs], names)


def tflite_converter(
    model: Any,
    precision: str,
    *,
    calibration: Feeds | None = None,
    batch: int = 1,
    int8_io: str = "int8",
    per_channel: bool = True,
    allow_select_tf_ops: bool = False,
    inputs: list[TensorSpec] | None = None,
    outputs: list[str] | None = None,
) -> Any:
    """The ``tf.lite.TFLiteConverter`` for ``precision``: what :func:`to_tflite` converts with and what
    :mod:`edgekit.converters.diagnose` runs TFLite's quantization debugger on.

    Full int8 uses ``int8_io`` (``int8``, ``uint8`` or ``float32``) for float
    inputs and outputs; integer inputs (token ids) stay integer. 16x8 keeps
    float I/O. Both need ``calibration`` (arrays by input name). With
    ``per_channel=False`` quantized weights get one scale per tensor.

    Example:
        >>> tflite_converter(model, "int8", calibration=x, int8_io="float32").optimizations  # doctest: +SKIP
        [<Optimize.DEFAULT: 'DEFAULT'>]
    """
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ConversionError(f"unknown TFLite precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    specs, names = inputs or input_specs(model), outputs or output_names(model)
    function, holder = serving_function(model, batch, specs, names)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], holder)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision in ("int8", "16x8"):
        if calibration is None:
            raise ConversionError(f"tflite:{precision} needs calibration data (--calib)")

        def representative() -> Any:  # by signature name: the converter orders inputs its own way
            for i in range(count(calibration)):
                yield {s.name: calibration[s.name][i : i + 1] for s in specs}

        converter.representative_dataset = representative
        converter._experimental_disable_per_channel = not per_channel  # the converter's only switch for it
        if precision == "int8":
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[int8_io]
            converter.inference_input_type = converter.inference_output_type = io_type
        else:
            ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if allow_select_tf_ops:
        ops = [*ops, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    return converter


def _explain(exc: Exception, precision: str) -> ConversionError:
    """The converter's failure as one line: unsupported ops named (a user-fixable input problem), else its last line."""
    text = str(exc)
    missing = sorted(set(re.findall(r"'tf\.([A-Z]\w*)'", text)))
    if "not supported" in text and missing:
        return UnsupportedOpError(
            f"tflite:{precision}: op(s) {', '.join(missing)} cannot be expressed in TFLite builtins; "
            "pass --allow-select-tf-ops to keep them as TensorFlow ops"
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return ConversionError(f"tflite:{precision}: converter failed: {lines[-1][:300] if lines else type(exc).__name__}")

"""Keras → TFLite for each precision: fp32, fp16, dynamic-range int8, full int8, 16x8.

Example:
    >>> blob = to_tflite(model, "int8", calibration=x, batch=1)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from edgekit.errors import ConversionError, UnsupportedOpError

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "16x8")


def _concrete_function(model: Any, batch: int) -> tuple[Any, Any]:
    """A static-batch serving function and a tf.Module tracking the model's variables.

    The converter freezes only variables it can find through the trackable
    object; Keras 3 variables wrap a ``tf.Variable`` in ``.value``, so they are
    listed on a plain ``tf.Module`` (without it the weights stay READ_VARIABLE ops).
    """
    import tensorflow as tf

    specs = [tf.TensorSpec((batch, *t.shape[1:]), tf.float32, name=f"input_{i}") for i, t in enumerate(model.inputs)]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> Any:
        return model(list(args) if len(args) > 1 else args[0], training=False)

    if type(model).__module__.startswith("tf_keras"):
        return serve.get_concrete_function(), model  # tf_keras tracks its own tf.Variables
    holder = tf.Module()
    holder.variables_ = [v.value for v in model.weights]
    holder.serve = serve
    return serve.get_concrete_function(), holder


def to_tflite(
    model: Any,
    precision: str,
    *,
    calibration: np.ndarray | None = None,
    batch: int = 1,
    int8_io: str = "int8",
    per_channel: bool = True,
    allow_select_tf_ops: bool = False,
) -> bytes:
    """Convert a Keras (3 or tf_keras) model to TFLite bytes at ``precision``.

    Full int8 uses ``int8_io`` (``int8``, ``uint8`` or ``float32``) for inputs
    and outputs; 16x8 keeps float I/O. Both need ``calibration``. With
    ``per_channel=False`` quantized weights get one scale per tensor.

    Example:
        >>> to_tflite(model, "fp16")[4:8]  # doctest: +SKIP
        b'TFL3'
    """
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ConversionError(f"unknown TFLite precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    function, holder = _concrete_function(model, batch)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision in ("int8", "16x8"):
        if calibration is None:
            raise ConversionError(f"tflite:{precision} needs calibration data (--calib)")

        def representative() -> Any:
            for row in calibration:
                yield [row[None].astype(np.float32)]

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
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise _explain(exc, precision) from None


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

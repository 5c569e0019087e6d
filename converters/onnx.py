"""Keras → ONNX through tf2onnx, and ONNX fp32 → int8 QDQ through ONNX Runtime static quantization.

Example:
    >>> fp32 = to_onnx(model, opset=17)  # doctest: +SKIP
    >>> int8 = quantize_onnx(fp32, calibration=x)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConversionError

DEFAULT_OPSET = 17
MAX_IR_VERSION = 10  # ONNX Runtime 1.31 reads IR <= 13; tf2onnx writes 8 at opset 17


def to_onnx(model: Any, *, opset: int = DEFAULT_OPSET, batch: int = 1) -> bytes:
    """Convert a Keras (3 or tf_keras) model to ONNX bytes; inputs ``input_0..``, outputs ``output_0..``.

    Example:
        >>> to_onnx(model)[:2]  # doctest: +SKIP
    """
    import tensorflow as tf
    import tf2onnx

    specs = [tf.TensorSpec((batch, *t.shape[1:]), tf.float32, name=f"input_{i}") for i, t in enumerate(model.inputs)]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> Any:
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return {f"output_{i}": o for i, o in enumerate(outs)}

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset)
    except Exception as exc:
        raise ConversionError(f"onnx:fp32: tf2onnx failed: {str(exc).splitlines()[0][:300]}") from None
    _freeze_captured_constants(proto, serve.get_concrete_function(), len(specs))
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    return proto.SerializeToString()


def _freeze_captured_constants(proto: Any, function: Any, num_inputs: int) -> None:
    """Turn graph inputs that are captured eager constants into initializers, in place.

    tf2onnx freezes captured variables but leaves captured eager tensors (a
    tf_keras Normalization's mean and variance) as graph inputs, which makes
    the model unusable; anything else left over is an error.
    """
    from onnx import numpy_helper

    values = {
        internal.name: external.numpy()
        for external, internal in function.graph.captures
        if hasattr(external, "numpy") and external.dtype.name != "resource"
    }
    initialized = {t.name for t in proto.graph.initializer}
    extra = [i for i in proto.graph.input if i.name not in initialized][num_inputs:]
    unknown = [i.name for i in extra if i.name not in values]
    if unknown:
        raise ConversionError(f"onnx:fp32: tf2onnx left captured tensors as graph inputs: {', '.join(unknown)}")
    for graph_input in extra:
        proto.graph.initializer.append(numpy_helper.from_array(values[graph_input.name], graph_input.name))
        proto.graph.input.remove(graph_input)


class _Reader:
    """ONNX Runtime calibration reader over a float array, one sample at a time."""

    def __init__(self, name: str, data: np.ndarray) -> None:
        self._rows = iter(data.astype(np.float32))
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        row = next(self._rows, None)
        return None if row is None else {self._name: row[None]}


def quantize_onnx(fp32: bytes, *, calibration: np.ndarray, per_channel: bool = True) -> bytes:
    """Static int8 quantization (QDQ, per-channel or per-tensor weights, int8 activations) with ONNX Runtime.

    Weights use 7 bits (``reduce_range``): ONNX Runtime's x86 int8 kernels
    without VNNI (AVX2, plain AVX-512) multiply u8×s8 pairs into int16 and
    saturate on full-range weights. Measured on the MobileNet digits model
    on this AVX2 CPU: top-1 agreement 66 % at full range, 100 % reduced.

    Example:
        >>> quantize_onnx(fp32_bytes, calibration=x)[:2]  # doctest: +SKIP
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, prep, dst = Path(tmp, "fp32.onnx"), Path(tmp, "prep.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        try:
            quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimization; quantize the raw graph if it fails
            prep = src
        name = onnx.load(str(prep)).graph.input[0].name
        try:
            quantize_static(
                str(prep), str(dst), _Reader(name, calibration),
                quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )  # fmt: skip
        except Exception as exc:
            raise ConversionError(
                f"onnx:int8: ONNX Runtime quantization failed: {str(exc).splitlines()[0][:300]}"
            ) from None
        return dst.read_bytes()

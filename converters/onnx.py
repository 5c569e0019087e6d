"""Keras → ONNX through tf2onnx, and ONNX fp32 → int8 QDQ through ONNX Runtime static quantization.

Example:
    >>> fp32 = to_onnx(model, opset=17)  # doctest: +SKIP
    >>> int8 = quantize_onnx(fp32, calibration=x)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.calibration import Feeds, count
from edgekit.converters.source import input_specs, output_names, serving_function
from edgekit.errors import ConversionError, InputError, UnsupportedOpError
from edgekit.runtime.specs import TensorSpec

DEFAULT_OPSET = 17
MIN_OPSET = 9  # ONNX Erf (the Erfc rewrite below) needs 9; MultiHeadAttention's Einsum needs 12
MAX_IR_VERSION = 10  # ONNX Runtime 1.31 reads IR <= 13; tf2onnx writes 8 at opset 17


def check_opset(opset: int) -> None:
    """Refuse an opset the installed tf2onnx cannot write, before any work.

    Example:
        >>> check_opset(30)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --opset 30: tf2onnx 1.17.0 writes opsets 9..18
    """
    import tf2onnx
    from tf2onnx import constants

    top = max(constants.OPSET_TO_IR_VERSION)
    if not MIN_OPSET <= opset <= top:
        raise InputError(f"--opset {opset}: tf2onnx {tf2onnx.__version__} writes opsets {MIN_OPSET}..{top}")


def _erfc_handler(ctx: Any, node: Any, name: str, args: Any) -> None:
    """tf2onnx handler for TF ``Erfc`` (exact GELU is ``0.5·x·erfc(-x/√2)``), which tf2onnx leaves unconverted.

    Emits ``Sub(1, Erf(x))``; ``node`` is already turned into the ``Sub``.
    Measured on a GELU / LayerNorm / MultiHeadAttention block: ≤ 2.5e-7
    relative to Keras, and ≤ 4.8e-7 absolute on inputs up to ×30.
    """
    from tf2onnx import utils

    x = node.input[0]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    erf = ctx.make_node("Erf", [x], op_name_scope=node.name, shapes=[ctx.get_shape(x)], dtypes=[ctx.get_dtype(x)])
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


@contextlib.contextmanager
def _grouped_conv_traced_plainly() -> Iterator[None]:
    """Trace grouped convolutions (ConvNeXt's depthwise layers: ``Conv2D(groups=C)``) as ``tf.nn.convolution``.

    Keras 3's TensorFlow backend runs them through a ``jit_compile`` tf.function (TensorFlow's CPU kernel lacks
    grouped convolution), which tf2onnx cannot inline: it left a ``StatefulPartitionedCall`` in the graph. Plain,
    tf2onnx writes an ONNX ``Conv`` with ``group`` set; ONNX Runtime runs it.
    """
    import tensorflow as tf
    from keras.src.backend import standardize_data_format
    from keras.src.backend.tensorflow import nn

    original = nn.conv

    def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
             dilation_rate: Any = 1) -> Any:  # fmt: skip
        grouped = inputs.shape[-1] != kernel.shape[-2]
        if standardize_data_format(data_format) == "channels_last" and grouped:
            return tf.nn.convolution(inputs, kernel, strides, padding.upper(), dilations=dilation_rate)
        return original(inputs, kernel, strides, padding, data_format, dilation_rate)

    nn.conv = conv
    try:
        yield
    finally:
        nn.conv = original


def to_onnx(
    model: Any,
    *,
    opset: int = DEFAULT_OPSET,
    batch: int = 1,
    inputs: list[TensorSpec] | None = None,
    outputs: list[str] | None = None,
) -> bytes:
    """Convert a Keras (3 or tf_keras) model to ONNX bytes; inputs and outputs carry the Keras names, in Keras order.

    Example:
        >>> to_onnx(model)[:2]  # doctest: +SKIP
    """
    import onnx
    import tf2onnx

    check_opset(opset)
    specs, names = inputs or input_specs(model), outputs or output_names(model)
    with _grouped_conv_traced_plainly():
        serve, _ = serving_function(model, batch, specs, names)
        try:
            proto, _ = tf2onnx.convert.from_function(
                serve, input_signature=serve.input_signature, opset=opset,
                custom_op_handlers={"Erfc": (_erfc_handler, ["Sub"])},
            )  # fmt: skip
        except Exception as exc:
            raise ConversionError(f"tf2onnx failed: {str(exc).splitlines()[0][:300]}") from None
    _freeze_captured_constants(proto, serve.get_concrete_function(), {s.name for s in specs})
    _order_io(proto, [s.name for s in specs], names)
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    try:  # an op tf2onnx could not convert stays in the graph under its TF name: refuse it here
        onnx.checker.check_model(proto)
    except Exception as exc:
        line = str(exc).splitlines()[0][:300]
        if op := re.search(r"No Op registered for (\w+)", line):
            raise UnsupportedOpError(
                f"TensorFlow op {op.group(1)} has no ONNX equivalent in tf2onnx {tf2onnx.__version__} (opset "
                f"{opset}): replace the layer that uses it, or convert to TFLite"
            ) from None
        raise ConversionError(f"tf2onnx left an op ONNX does not know: {line}") from None
    return proto.SerializeToString()


def _order_io(proto: Any, inputs: list[str], outputs: list[str]) -> None:
    """Name the graph's inputs and outputs exactly as Keras does and put them in Keras order, in place."""
    for kind, want in (("input", inputs), ("output", outputs)):
        values = getattr(proto.graph, kind)
        by_name = {v.name.split(":")[0]: v for v in values}
        if sorted(by_name) != sorted(want):
            raise ConversionError(f"onnx:fp32: graph {kind}s are {sorted(by_name)}, expected {want}")
        renames = {v.name: name for name, v in by_name.items() if v.name != name}
        ordered = [by_name[name] for name in want]
        for v in ordered:
            v.name = v.name.split(":")[0]
        for node in proto.graph.node:  # a ':0' suffix tf2onnx kept must be renamed where it is used too
            node.input[:] = [renames.get(n, n) for n in node.input]
            node.output[:] = [renames.get(n, n) for n in node.output]
        copies = [type(v)() for v in ordered]
        for copy, v in zip(copies, ordered, strict=True):
            copy.CopyFrom(v)
        del values[:]
        values.extend(copies)


def _freeze_captured_constants(proto: Any, function: Any, input_names: set[str]) -> None:
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
    extra = [i for i in proto.graph.input if i.name not in initialized and i.name.split(":")[0] not in input_names]
    unknown = [i.name for i in extra if i.name not in values]
    if unknown:
        raise ConversionError(f"tf2onnx left captured tensors as graph inputs: {', '.join(unknown)}")
    for graph_input in extra:
        proto.graph.initializer.append(numpy_helper.from_array(values[graph_input.name], graph_input.name))
        proto.graph.input.remove(graph_input)


class _Reader:
    """ONNX Runtime calibration reader over arrays by input name, one sample at a time."""

    def __init__(self, feeds: Feeds) -> None:
        self._rows = iter(range(count(feeds)))
        self._feeds = feeds

    def get_next(self) -> dict[str, np.ndarray] | None:
        i = next(self._rows, None)
        return None if i is None else {k: v[i : i + 1] for k, v in self._feeds.items()}

    def __iter__(self) -> Any:  # qdq_loss_debug iterates the reader
        return iter(self.get_next, None)


def preprocess_onnx(fp32: bytes) -> bytes:
    """ONNX Runtime's quantization pre-processing (shape inference, graph optimization): the graph that
    :func:`quantize_onnx` quantizes, whose node names ``nodes_to_exclude`` refers to. The raw graph where it fails.

    Example:
        >>> preprocess_onnx(fp32_bytes)[:2]  # doctest: +SKIP
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, prep = Path(tmp, "fp32.onnx"), Path(tmp, "prep.onnx")
        src.write_bytes(fp32)
        try:
            quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimization; quantize the raw graph if it fails
            return fp32
        return prep.read_bytes()


def quantize_onnx(
    fp32: bytes, *, calibration: Feeds, per_channel: bool = True, nodes_to_exclude: list[str] | None = None,
    preprocessed: bytes | None = None,
) -> bytes:  # fmt: skip
    """Static 8-bit quantization (QDQ, per-channel or per-tensor int8 weights, uint8 activations) with ONNX
    Runtime; ``nodes_to_exclude`` (nodes of :func:`preprocess_onnx`'s graph) stay float.

    Activations are uint8 and weights int8 (U8S8), the pair ONNX Runtime's x86 kernels run fastest: on an
    AVX-512 VNNI CPU, MobileNetV2 224 at one thread ran 1.74–1.87× faster than its fp32 file, against
    1.16–1.22× with int8 activations (S8S8), and 1.85–1.90× for the LiteRT int8 file from the same model in the
    same runs (``bench/results.json → onnx_int8``); QOperator (QLinearConv) U8S8 ran as fast as QDQ.
    Weights use 7 bits (``reduce_range``): the x86 int8 kernels without VNNI (AVX2, plain AVX-512) multiply
    u8×s8 pairs into int16 and saturate on full-range weights (MobileNet digits on an AVX2 CPU: top-1
    agreement 66 % at full range, 100 % reduced); on VNNI it costs no speed (1.87× either way).

    Example:
        >>> quantize_onnx(fp32_bytes, calibration=x)[:2]  # doctest: +SKIP
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        prep, dst = Path(tmp, "prep.onnx"), Path(tmp, "int8.onnx")
        prep.write_bytes(preprocessed or preprocess_onnx(fp32))
        try:
            quantize_static(
                str(prep), str(dst), _Reader(calibration),
                quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=nodes_to_exclude or [],
            )  # fmt: skip
        except Exception as exc:
            raise ConversionError(
                f"onnx:int8: ONNX Runtime quantization failed: {str(exc).splitlines()[0][:300]}"
            ) from None
        return dst.read_bytes()


def onnx_layer_errors(
    float_model: bytes, qdq_model: bytes, data: Feeds, layer_names: list[str], samples: int = 64
) -> list[dict[str, Any]]:
    """Per-tensor quantization error of a QDQ model with ONNX Runtime's ``qdq_loss_debug``, in graph order:
    ``name`` (the float tensor), ``op`` (the node writing it; ``input`` for a graph input), ``snr_db`` (the
    tensor before its QuantizeLinear against after its DequantizeLinear: the error quantizing it adds),
    ``xmodel_snr_db`` (the float model's tensor against the QDQ model's: the error accumulated so far),
    ``keras_layer``, and ``nodes``: what ``nodes_to_exclude`` keeps float for it (its writer, or an input's
    readers). ``float_model`` is :func:`preprocess_onnx`'s graph.

    Example:
        >>> onnx_layer_errors(prep, int8, calibration, ["scale"])[0]["op"]  # doctest: +SKIP
        'input'
    """
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from edgekit.converters.diagnose import keras_layer_of

    n = min(count(data), samples)
    subset = {k: v[:n] for k, v in data.items()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, blob in (("float", float_model), ("qdq", qdq_model)):
            Path(tmp, f"{name}.onnx").write_bytes(blob)
            paths[name] = str(Path(tmp, f"{name}_aug.onnx"))
            modify_model_output_intermediate_tensors(str(Path(tmp, f"{name}.onnx")), paths[name])
        float_acts = collect_activations(paths["float"], _Reader(subset))
        qdq_acts = collect_activations(paths["qdq"], _Reader(subset))
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    graph = onnx.load_from_string(float_model).graph
    writer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    order = [i.name for i in graph.input] + [out for node in graph.node for out in node.output]
    found = []
    for name in sorted(errors, key=lambda t: order.index(t) if t in order else len(order)):
        node = writer.get(name)
        found.append({
            "name": name, "op": node.op_type if node else "input",
            "snr_db": round(float(np.clip(errors[name]["qdq_err"], -120, 120)), 2),
            "xmodel_snr_db": round(float(np.clip(errors[name].get("xmodel_err", 120), -120, 120)), 2),
            "keras_layer": keras_layer_of(node.name if node else name, layer_names),
            "nodes": [node.name] if node else readers.get(name, []),
        })  # fmt: skip
    return found

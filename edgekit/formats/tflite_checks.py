"""Structural checks a TFLite file must pass before a native runtime sees it.

LiteRT trusts much of the flatbuffer: mutated files (an emptied operand list or weight buffer, a zero point
far outside its type's range) crashed it in issue 21's fuzzing, and the ones it catches come back as
``RuntimeError: ... failed to prepare``. :func:`check_structure` refuses such files first, naming what is
wrong (:func:`~edgekit.formats.tflite.parse_tflite` calls it):

- the main subgraph has outputs; every operand and subgraph input / output index names a tensor (or is -1, an
  absent optional operand);
- every tensor an operator reads is provided: a subgraph input, a constant, a variable, or an earlier output;
- an operator that keeps its input's type (``TYPE_PRESERVING``) gives its input's type, an element-wise one
  (``ELEMENTWISE``) its input's shape; a RESHAPE has a target shape; a quantized activation has no zero scale;
- operators have the operands their kernels index unchecked (``MIN_OPERANDS``; ``QUANTIZED_MIN_OPERANDS`` for
  integer kernels), the required ones present (not -1:
  ``REQUIRED_OPERANDS``, at least the first), and at least one output, none of them -1;
- a tensor's shape signature has its shape's rank and dimensions (or -1 where open);
- an operator's builtin options are its own (not another operator's: ``SHARED_OPTIONS`` lists the exceptions);
- a constant's buffer holds exactly its shape's bytes;
- quantization: scales finite and >= 0, as many zero points as scales, zero points inside the type's range;
- shapes: dimensions >= -1, no tensor over the ``tensor_bytes`` limit, activations together under
  ``activation_bytes`` (an upper bound of the runtime's arena; :mod:`edgekit.limits`).

Example:
    >>> check_structure(read_tflite("mobilenet_v2_1.0_224_quant.tflite"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import ModelFormatError
from edgekit.limits import limit, over

if TYPE_CHECKING:
    from edgekit.formats.tflite import SubgraphInfo, TensorInfo, TFLiteModel

# Operands kernels index without checking the count (the optional ones are -1, not missing).
MIN_OPERANDS = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "TRANSPOSE_CONV": 3,
    "FULLY_CONNECTED": 2,
    "ADD": 2,
    "SUB": 2,
    "MUL": 2,
    "DIV": 2,
    "BATCH_MATMUL": 2,
    "RESHAPE": 1,
    "CONCATENATION": 1,
    "SOFTMAX": 1,
    "AVERAGE_POOL_2D": 1,
    "MAX_POOL_2D": 1,
    "MEAN": 2,
    "PAD": 2,
    "GATHER": 2,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 24,
    "LSTM": 24,
    "QUANTIZE": 1,
    "DEQUANTIZE": 1,
    "SPLIT": 2,
    "SPLIT_V": 3,
    "STRIDED_SLICE": 4,
    "SLICE": 3,
    "TRANSPOSE": 2,
    "PADV2": 3,
    "MIRROR_PAD": 2,
    "TILE": 2,
    "EXPAND_DIMS": 2,
    "BATCH_TO_SPACE_ND": 3,
    "SPACE_TO_BATCH_ND": 3,
    "RESIZE_BILINEAR": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2,
    "ARG_MAX": 2,
    "ARG_MIN": 2,
    "SUM": 2,
    "REDUCE_MAX": 2,
    "REDUCE_MIN": 2,
    "REDUCE_PROD": 2,
    "SELECT": 3,
    "SELECT_V2": 3,
    "FILL": 2,
    "ONE_HOT": 4,
    "TOPK_V2": 2,
    "GATHER_ND": 2,
    "SCATTER_ND": 3,
    "BROADCAST_TO": 2,
    "SPARSE_TO_DENSE": 4,
    "SQUARED_DIFFERENCE": 2,
    "MAXIMUM": 2,
    "MINIMUM": 2,
    "POW": 2,
    "FLOOR_DIV": 2,
    "FLOOR_MOD": 2,
    "LESS": 2,
    "GREATER": 2,
    "EQUAL": 2,
    "NOT_EQUAL": 2,
    "LESS_EQUAL": 2,
    "GREATER_EQUAL": 2,
    "PRELU": 2,
    "CUMSUM": 2,
}  # fmt: skip  (the schema's input counts: kernels read them by position)
# Builtins that take no input at all; every other operator needs at least one.
NO_INPUT_OPS = {"VAR_HANDLE", "CALL_ONCE", "RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL"}
# Element-wise operators of one input: output 0 has input 0's shape (a QUANTIZE whose input gained a dimension fed
# an LSTM that aborted the process: the fuzz harness).
ELEMENTWISE = {"QUANTIZE", "DEQUANTIZE", "CAST", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "LOGISTIC", "ABS", "NEG",
               "EXP", "LOG", "SQRT", "RSQRT", "HARD_SWISH", "LEAKY_RELU", "ELU", "GELU", "SQUARE"}  # fmt: skip
# Operators whose output 0 has the type of their input 0 (an LSTM whose output was re-typed int32 under int8
# inputs ran, then aborted the process: found by the fuzz harness). Type-changing ops are not listed.
TYPE_PRESERVING = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM", "ADD", "SUB", "MUL",
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "PAD", "PADV2", "MAX_POOL_2D",
    "AVERAGE_POOL_2D", "RELU", "RELU6", "TANH", "LOGISTIC", "STRIDED_SLICE", "SLICE", "GATHER", "MEAN",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
}  # fmt: skip
# Operators whose options are named after another operator (the rest: their own, or a shared name like Pool2D).
SHARED_OPTIONS = {"CONV_3D_TRANSPOSE": "Conv3DOptions", "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions"}
# Quantized kernels that read an operand the float kernel may go without: LiteRT's uint8 DEPTHWISE_CONV_2D
# dereferences its bias when the node has only two inputs (SIGSEGV, found by the fuzz harness).
QUANTIZED_MIN_OPERANDS = {"DEPTHWISE_CONV_2D": 3}
# Operands that must be present (not -1, an absent optional operand): the first MIN_OPERANDS (at least the first)
# by default; the LSTMs' are the input, the weights, the gate biases and the two states.
REQUIRED_OPERANDS = {
    name: (0, 2, 3, 4, 6, 7, 8, 13, 14, 15, 18, 19) for name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM")
}
ITEMSIZE = {  # bytes per element of the tensor types both readers name

    "float32": 4, "float16": 2, "float64": 8, "bfloat16": 2, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1, "complex64": 8, "complex128": 16,
}  # fmt: skip
_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(2**31), 2**31 - 1)}


def _nbytes(tensor: TensorInfo) -> int | None:
    """Bytes of a dense tensor; None for types without a fixed size here (string, resource, variant, int4)."""
    itemsize = ITEMSIZE.get(tensor.dtype)
    return None if itemsize is None else tensor.num_elements * itemsize


def _check_tensor(tensor: TensorInfo, buffer: np.ndarray) -> str | None:
    if any(d < -1 for d in tensor.shape):
        return f"has a negative dimension {list(tensor.shape)}"
    signature = tensor.shape_signature
    if len(signature) != len(tensor.shape) or any(
        s not in (-1, d) for s, d in zip(signature, tensor.shape, strict=True)
    ):
        return f"has a shape signature {list(signature)} that is not its shape {list(tensor.shape)} (-1: open)"
    size = _nbytes(tensor)
    if size is not None and size > limit("tensor_bytes"):
        return over("tensor_bytes", f"asks for {size:,} bytes ({list(tensor.shape)})")
    if len(buffer) and size is not None and -1 not in tensor.shape and not tensor.is_sparse and len(buffer) != size:
        return f"is a constant of {size} bytes ({list(tensor.shape)} {tensor.dtype}) whose buffer holds {len(buffer)}"
    if any(not np.isfinite(s) or s < 0 for s in tensor.scales):
        return f"has a quantization scale that is negative or not finite ({tensor.scales[:4]})"
    if not tensor.is_constant and tensor.dtype in ("int8", "uint8", "int16") and any(s == 0 for s in tensor.scales):
        return "is a quantized activation with a zero scale"  # LiteRT divides by it (SIGSEGV, the fuzz harness)
    if tensor.zero_points and len(tensor.zero_points) != len(tensor.scales):
        return f"has {len(tensor.scales)} quantization scales but {len(tensor.zero_points)} zero points"
    low, high = _INT_RANGE.get(tensor.dtype, (None, None))
    if low is not None and any(not low <= z <= high for z in tensor.zero_points):
        return f"has a zero point outside {tensor.dtype}'s range ({tensor.zero_points[:4]})"
    return None


def _plain(name: str) -> str:
    return name.replace("_", "").lower()


def _options_mismatch(op_name: str, options_type: str) -> str | None:
    """Options of another operator (a SPLIT carrying SoftmaxOptions: LiteRT reads them as its own and crashed).
    Options named after no operator (Pool2DOptions, ReducerOptions...) are shared and never refused here."""
    if not options_type or op_name.startswith("CUSTOM") or SHARED_OPTIONS.get(op_name) == options_type:
        return None
    if options_type.startswith("unknown"):
        return f"carries an {options_type}"
    owner = _plain(options_type.removesuffix("Options"))
    if owner != _plain(op_name) and owner in _builtin_names():
        return f"carries {options_type}, another operator's options"
    return None


@functools.cache
def _builtin_names() -> frozenset[str]:
    from edgekit.formats.tflite import schema

    return frozenset(_plain(k) for k in vars(schema().BuiltinOperator) if not k.startswith("_"))


def _check_graph(graph: SubgraphInfo, buffers: list[np.ndarray]) -> str | None:
    count = len(graph.tensors)
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if bad := [i for i in indices if not 0 <= i < count]:
            return f"its {kind} list names tensor {bad[0]}, but it has {count} tensors"
    provided = set(graph.inputs)
    activations = 0
    for index, tensor in enumerate(graph.tensors):
        if why := _check_tensor(tensor, buffers[tensor.buffer] if buffers else np.empty(0)):
            return f"tensor {index} ({tensor.name!r}) {why}"
        if tensor.is_constant or tensor.is_variable:
            provided.add(index)
        else:
            activations += _nbytes(tensor) or 0
    if activations > limit("activation_bytes"):
        return over("activation_bytes", f"its activations take {activations:,} bytes")
    for position, op in enumerate(graph.ops):
        where = f"operator {position} ({op.name})"
        if any(i < -1 for i in op.inputs) or any(i < 0 for i in op.outputs):
            return f"{where} names a negative tensor index"
        quantized = op.inputs and 0 <= op.inputs[0] < count and graph.tensors[op.inputs[0]].dtype in _INT_RANGE
        needed = max(MIN_OPERANDS.get(op.name, 0), QUANTIZED_MIN_OPERANDS.get(op.name, 0) if quantized else 0)
        takes_none = op.name in NO_INPUT_OPS or op.name.startswith("CUSTOM")
        if len(op.inputs) < needed or not op.outputs or (not op.inputs and not takes_none):
            return f"{where} has {len(op.inputs)} inputs and {len(op.outputs)} outputs; its kernel needs more"
        shape_given = len(op.inputs) > 1 and op.inputs[1] >= 0
        if op.name == "RESHAPE" and not shape_given and not op.options.get("new_shape"):
            return f"{where} has no target shape (no shape operand, no new_shape option)"
        if op.name in ELEMENTWISE and op.inputs[0] >= 0:
            given, made = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
            if given != made and -1 not in given + made:
                return f"{where} takes {list(given)} and gives {list(made)}; it keeps its input's shape"
        if op.name in TYPE_PRESERVING and op.inputs[0] >= 0:
            given, made = graph.tensors[op.inputs[0]].dtype, graph.tensors[op.outputs[0]].dtype
            if given != made:
                return f"{where} takes {given} and gives {made}; it keeps its input's type"
        if why := _options_mismatch(op.name, op.options_type):
            return f"{where} {why}"
        required = REQUIRED_OPERANDS.get(op.name, range(MIN_OPERANDS.get(op.name, 1 if op.inputs else 0)))
        if absent := [i for i in required if i < len(op.inputs) and op.inputs[i] == -1]:
            return f"{where} leaves its operand {absent[0]} absent (-1); its kernel needs it"
        if missing := [i for i in op.inputs if i >= 0 and i not in provided]:
            return f"{where} reads tensor {missing[0]} ({graph.tensors[missing[0]].name!r}), which nothing provides"
        provided.update(op.outputs)
    if missing := [i for i in graph.outputs if i not in provided]:
        return f"its output tensor {missing[0]} is produced by no operator"
    return None


def check_structure(model: TFLiteModel) -> None:
    """Refuse a model with a structural fault a native runtime would crash on (see the module docstring).

    Example:
        >>> check_structure(model)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.ModelFormatError: m.tflite: subgraph 0: operator 3 (FULLY_CONNECTED) reads tensor 7 ...
    """
    main = model.subgraphs[0] if model.subgraphs else None
    if main is None or not main.outputs:
        raise ModelFormatError(f"{model.path}: its main subgraph has no outputs: it computes nothing")
    for number, graph in enumerate(model.subgraphs):
        if why := _check_graph(graph, model.buffers):
            raise ModelFormatError(f"{model.path}: subgraph {number}: {why} (refused before a runtime loads it)")

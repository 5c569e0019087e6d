"""Edge TPU pre-flight: which ops ``edgetpu_compiler`` would map, which stay on the CPU, and why.

The method, from Coral's published requirements and the behaviour seen in compiler logs:

1. **The model must be fully 8-bit.** Every runtime tensor of a compute op is int8 / uint8
   (a fused LSTM's int16 state and int32 biases excepted), shapes are static, and activations
   have at most 3 dimensions larger than 1, all innermost (weights are not limited). A float,
   float16 or dynamic-range model is refused as a whole ("Model not quantized"); a dynamic shape fails the compile.
2. **Each op is checked against Coral's supported-op table** (:data:`EDGETPU_OPS`) and that op's
   constraints: no fused activation on pooling and concatenation, equal x/y dilation, unit
   strides for STRIDED_SLICE, 1-D SOFTMAX of ≤ 16,000 elements, no batch-axis reduction,
   padding, packing or splitting, op version 3 of the resize ops (``half_pixel_centers``) refused.
   Resizes map only with a whole-number ratio per spatial axis (``align_corners``:
   (out − 1) / (in − 1)); Coral says only "depending on input/output size" — this ratio rule is
   ours, inferred from Coral's compiled DeepLab v3, whose 1×1 → 33×33 ``align_corners`` resize
   stayed on the CPU.
3. **One segment** (the compiler's default, without the experimental ``-a``): the compiler maps
   ops in execution order up to the first op it cannot map; that op and every op after it run
   on the CPU, even supported ones. Leading ops that only convert the inputs' types (a CAST of an
   input; QUANTIZE / DEQUANTIZE of a float input) stay on the CPU in front of the segment (inferred from the
   compiler's logs: a model whose first op is a CAST in front of its QUANTIZE kept 98 of 157 ops mapped).
4. **Parameter memory**: about 8 MB of SRAM holds the executable and cached parameters
   (published compiler logs show 7.5–7.9 MiB left for parameters: :data:`ON_CHIP_BYTES`).
   Mapped ops' constant data is placed on-chip in execution order until an op's data no longer
   fits; from there it is streamed from host memory on each inference. The compiler does not
   document its policy; this is an estimate.

On Coral's four CPU / compiled pairs in ``shared/coral`` this predicts the compiler's CPU ops
exactly (0, 0, 1 and 8). Compiled models (``edgetpu-custom-op``) are read, not predicted.

**Documented and inferred.** Documented by Coral ("Edge TPU model requirements", the supported-operations
table and its notes): full 8-bit quantization, static shapes, the 3-innermost-dimensions rule, the op table, the
softmax size limit, one segment from the first unsupported op on, about 8 MB of on-chip memory. Inferred from
compiled models and published compiler logs, not documented: the resize ratio rule, the leading type
conversions kept in front of the segment, the refusal of fused activations on pooling / concatenation, and the
7.75 MiB left for parameters. TILE is not in Coral's table, so it cuts the segment here; a compiler log in which
a segmentation model kept 6 of 8 ops after a late TILE on the Edge TPU suggests newer compilers map it: not
confirmed against a compiler here, so left as the table says.

Example:
    >>> from edgekit.formats.tflite import read_tflite
    >>> deeplab = read_tflite("../shared/coral/deeplabv3_mnv2_dm05_pascal_quant.tflite")  # doctest: +SKIP
    >>> tpu = edgetpu_preflight(deeplab)  # doctest: +SKIP
    >>> tpu["ops_cpu"], tpu["first_cpu_op_index"], tpu["cpu_ops"][0]  # doctest: +SKIP
    (8, 64, 'RESIZE_BILINEAR')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.formats.tflite import EDGETPU_CUSTOM_OP, OpInfo, SubgraphInfo, TensorInfo, TFLiteModel, quantization_kind

ON_CHIP_BYTES = int(7.75 * (1 << 20))
INTEGER_DTYPES = {"int8", "uint8"}
SOFTMAX_MAX_ELEMENTS = 16_000
Check = Callable[[OpInfo, SubgraphInfo, TFLiteModel], str | None]


def _no_fused_activation(op: OpInfo, _graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    return "fused activation not supported" if op.options.get("fused_activation_function", 0) else None


def _same_dilation(op: OpInfo, _graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    w, h = op.options.get("dilation_w_factor", 1), op.options.get("dilation_h_factor", 1)
    return None if w == h else f"dilation {h}x{w} differs in x and y"


def _concatenation(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel) -> str | None:
    constants = [t for i in op.inputs if (t := graph.tensor(i)) is not None and t.is_constant]
    if constants and (len(op.inputs) != 2 or model.buffers[constants[0].buffer].any()):
        return "a constant input is allowed only as the second of 2 inputs and all zeros (zero padding)"
    return _no_fused_activation(op, graph, model)


def _fully_connected(op: OpInfo, graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    if op.options.get("weights_format", 0) != 0:
        return "only the default weights format is supported"
    out = graph.tensor(op.outputs[0])
    if out is not None and any(d > 1 for d in out.shape[:-1]):
        return f"output {list(out.shape)} is not one-dimensional"
    return None


def _axis_values(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel, position: int) -> list[int] | None:
    t = graph.tensor(op.inputs[position]) if len(op.inputs) > position else None
    if t is None or not t.is_constant:
        return None
    return [int(v) for v in np.frombuffer(model.buffers[t.buffer].tobytes(), dtype=np.dtype(t.dtype)).ravel()]


def _rank(op: OpInfo, graph: SubgraphInfo) -> int:
    t = graph.tensor(op.inputs[0])
    return len(t.shape) if t is not None else 0


def _softmax(op: OpInfo, graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    t = graph.tensor(op.inputs[0])
    if t is None:
        return None
    if any(d > 1 for d in t.shape[:-1]):
        return f"input {list(t.shape)} is not 1-D"
    return None if t.num_elements <= SOFTMAX_MAX_ELEMENTS else f"{t.num_elements} elements (at most 16,000)"


def _strided_slice(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel) -> str | None:
    if op.options.get("ellipsis_mask") or op.options.get("new_axis_mask"):
        return "ellipsis / new-axis masks not supported"
    strides = _axis_values(op, graph, model, 3)
    if strides is None or any(s != 1 for s in strides):
        return "only strided slices with unit strides are supported"
    return None


def _not_on_batch(kind: str, position: int) -> Check:
    def check(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel) -> str | None:
        axes = _axis_values(op, graph, model, position)
        rank = _rank(op, graph)
        if axes is None:
            return f"{kind} axes must be constant"
        if rank > 1 and any(a % rank == 0 for a in axes):
            return f"{kind} over the batch dimension"
        return None

    return check


def _pad(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel) -> str | None:
    pads = _axis_values(op, graph, model, 1)
    if pads is None:
        return "paddings must be constant"
    return "padding in the batch dimension" if _rank(op, graph) > 1 and any(pads[:2]) else None


def _pack(op: OpInfo, _graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    return "packing in the batch dimension" if op.options.get("axis", 0) == 0 else None


def _split(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel) -> str | None:
    axis = _axis_values(op, graph, model, 0)
    data = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    rank = len(data.shape) if data is not None else 0
    return "splitting in the batch dimension" if axis and rank > 1 and axis[0] % rank == 0 else None


def _prelu(op: OpInfo, graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    alpha = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if alpha is not None and any(d > 1 for d in alpha.shape[:-1]):
        return "alpha must be 1-D (one slope per channel)"
    return None


def _resize(op: OpInfo, graph: SubgraphInfo, _model: TFLiteModel) -> str | None:
    align = bool(op.options.get("align_corners"))
    if op.options.get("half_pixel_centers") or (op.name == "RESIZE_NEAREST_NEIGHBOR" and align):
        return "operation version not supported (half_pixel_centers / align_corners resize is op version 3)"
    src, dst = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    if src is None or dst is None or len(src.shape) != 4 or len(dst.shape) != 4:
        return None
    for n_in, n_out in zip(src.shape[1:3], dst.shape[1:3], strict=True):
        num, den = (n_out - 1, n_in - 1) if align else (n_out, n_in)
        if den <= 0 or num % den:
            ratio = "undefined" if den <= 0 else f"{num}/{den}"
            return (f"resize {n_in} -> {n_out}{' (align_corners)' if align else ''} has no whole-number ratio "
                    f"({ratio}): not mapped to avoid loss of precision")  # fmt: skip
    return None


# Coral's supported-op table (compiler 16 / runtime 14), each with its constraints.
# Each check takes (op, graph, model) and returns why the op cannot map, or None.
EDGETPU_OPS: dict[str, tuple[Check, ...]] = {
    "ADD": (), "SUB": (), "MUL": (), "MAXIMUM": (), "MINIMUM": (), "SQUARED_DIFFERENCE": (),
    "AVERAGE_POOL_2D": (_no_fused_activation,), "MAX_POOL_2D": (_no_fused_activation,),
    "CONCATENATION": (_concatenation,),
    "CONV_2D": (_same_dilation,), "DEPTHWISE_CONV_2D": (_same_dilation,), "TRANSPOSE_CONV": (),
    "FULLY_CONNECTED": (_fully_connected,),
    "EXPAND_DIMS": (), "SQUEEZE": (), "RESHAPE": (), "TRANSPOSE": (), "SLICE": (), "SPACE_TO_DEPTH": (),
    "L2_NORMALIZATION": (), "LOGISTIC": (), "TANH": (), "RSQRT": (),
    "RELU": (), "RELU6": (), "RELU_N1_TO_1": (), "PRELU": (_prelu,),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (),
    "MEAN": (_not_on_batch("reduction", 1),), "SUM": (_not_on_batch("reduction", 1),),
    "REDUCE_MAX": (_not_on_batch("reduction", 1),), "REDUCE_MIN": (_not_on_batch("reduction", 1),),
    "PACK": (_pack,), "PAD": (_pad,), "SPLIT": (_split,),
    "QUANTIZE": (),
    "RESIZE_BILINEAR": (_resize,), "RESIZE_NEAREST_NEIGHBOR": (_resize,),
    "SOFTMAX": (_softmax,), "STRIDED_SLICE": (_strided_slice,),
}  # fmt: skip

# Tensors that may be wider than 8 bits: biases (int32) and a fused LSTM's int16 cell state.
_WIDE_OK = {"int32", "int16"}


def _tensor_reason(t: TensorInfo, op: OpInfo) -> str | None:
    if (
        not t.is_constant
        and t.dtype not in INTEGER_DTYPES
        and not (op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and (t.is_variable or t.dtype in _WIDE_OK))
    ):
        return f"tensor {t.name!r} is {t.dtype} (the Edge TPU works on int8 / uint8)"
    if t.is_constant and t.dtype not in INTEGER_DTYPES | _WIDE_OK:
        return f"constant {t.name!r} is {t.dtype} (not quantized)"
    if not t.is_constant and len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
        return f"tensor {t.name!r} {list(t.shape)}: only the 3 innermost dimensions may be larger than 1"
    return None


def op_reason(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel) -> str | None:
    """Why the compiler would not map ``op`` on its own merits (None: it would).

    Example:
        >>> op_reason(graph.ops[71], graph, model)  # doctest: +SKIP
        'ARG_MAX is not supported by the Edge TPU'
    """
    checks = EDGETPU_OPS.get(op.name)
    if checks is None:
        return f"{op.name.removeprefix('CUSTOM:')} is not supported by the Edge TPU"
    for i in [*op.inputs, *op.outputs]:
        t = graph.tensor(i)
        if t is not None and (reason := _tensor_reason(t, op)):
            return reason
    for check in checks:
        if reason := check(op, graph, model):
            return reason
    return None


def model_blockers(model: TFLiteModel) -> list[str]:
    """Model-wide reasons the compiler refuses the whole file (empty: it can be compiled).

    Example:
        >>> model_blockers(read_tflite("model_fp32.tflite"))  # doctest: +SKIP
        ['not fully 8-bit quantized (float32): ...']
    """
    blockers = []
    if model.edgetpu_compiled:
        blockers.append(f"already compiled for the Edge TPU (holds {EDGETPU_CUSTOM_OP})")
    quantization = quantization_kind(model)
    if quantization not in ("int8", "uint8", "mixed"):
        blockers.append(
            f"not fully 8-bit quantized ({quantization}): the Edge TPU needs full-integer int8 / uint8 "
            "(edgekit convert MODEL --to edgetpu --calib DATA)"
        )
    for graph in model.subgraphs:
        for t in graph.tensors:
            if any(d < 0 for d in t.shape_signature):
                blockers.append(f"tensor {t.name!r} has a dynamic shape {list(t.shape_signature)} (-1 = unknown): "
                                "the compiler needs static shapes (convert with a fixed --batch)")  # fmt: skip
                break
    return blockers


def _leading_conversions(graph: SubgraphInfo) -> int:
    """How many ops at the start only convert the graph inputs' types: a CAST of an input, and QUANTIZE /
    DEQUANTIZE of a float input (or of such a conversion's output). The compiler leaves them on the CPU in front of
    the Edge TPU segment rather than cutting it there."""
    count, converted = 0, set(graph.inputs)
    for op in graph.ops:
        src = graph.tensor(op.inputs[0]) if op.inputs else None
        if src is None or op.inputs[0] not in converted:
            break
        if op.name == "CAST" or (op.name in ("QUANTIZE", "DEQUANTIZE") and src.dtype not in INTEGER_DTYPES):
            count += 1
            converted.update(op.outputs)
            continue
        break
    return count


def _constant_bytes(op: OpInfo, graph: SubgraphInfo, model: TFLiteModel, seen: set[int]) -> int:
    total = 0
    for i in op.inputs:
        t = graph.tensor(i)
        if t is not None and t.is_constant and t.buffer not in seen:
            seen.add(t.buffer)
            total += len(model.buffers[t.buffer])
    return total


def edgetpu_preflight(model: TFLiteModel) -> dict[str, Any]:
    """Predict how ``edgetpu_compiler`` (default single segment) partitions a TFLite model.

    Returns ``ops_mapped``, ``ops_cpu``, ``cpu_ops`` (names in execution order),
    ``first_cpu_op_index`` (index in the main subgraph of the first op left on the CPU, None when
    all map), ``reasons`` (one per CPU op: why), ``param_bytes_on_chip`` /
    ``param_bytes_off_chip`` and ``blockers`` (model-wide reasons nothing maps). For a file the
    compiler already produced, the same keys are read from the file (``compiled: True``).

    Example:
        >>> edgetpu_preflight(read_tflite("mobilenet_v1_0.25_128_quant.tflite"))["ops_cpu"]  # doctest: +SKIP
        0
    """
    graph = model.subgraphs[0]
    if model.edgetpu_compiled:
        cpu = [(i, op) for i, op in enumerate(graph.ops) if op.name != f"CUSTOM:{EDGETPU_CUSTOM_OP}"]
        return {
            "compiled": True,
            "ops_mapped": None,  # folded into the custom op: not countable from the file
            "ops_cpu": len(cpu),
            "cpu_ops": [op.name for _, op in cpu],
            "first_cpu_op_index": cpu[0][0] if cpu else None,
            "reasons": [{"index": i, "op": op.name, "reason": "left on the CPU by the compiler"} for i, op in cpu],
            "param_bytes_on_chip": None,
            "param_bytes_off_chip": None,
            "blockers": [],
        }
    blockers = model_blockers(model)
    reasons: list[dict[str, Any]] = []
    mapped: list[OpInfo] = []
    lead = _leading_conversions(graph)
    cut: int | None = None
    for index, op in enumerate(graph.ops):
        if blockers:
            why = blockers[0]
        elif index < lead:
            why = "converts an input's type: runs on the CPU in front of the Edge TPU segment"
        elif cut is not None:
            own = op_reason(op, graph, model)
            why = own or f"after the first unmapped op ({graph.ops[cut].name} at {cut}): only one segment is mapped"
        else:
            why = op_reason(op, graph, model)
            if why is None:
                mapped.append(op)
                continue
            cut = index
        reasons.append({"index": index, "op": op.name, "reason": why})
    seen: set[int] = set()
    on_chip = off_chip = 0
    for op in mapped:
        size = _constant_bytes(op, graph, model, seen)
        if off_chip == 0 and on_chip + size <= ON_CHIP_BYTES:
            on_chip += size
        else:
            off_chip += size
    return {
        "compiled": False,
        "ops_mapped": len(mapped),
        "ops_cpu": len(reasons),
        "cpu_ops": [r["op"] for r in reasons],
        "first_cpu_op_index": reasons[0]["index"] if reasons else None,
        "reasons": reasons,
        "param_bytes_on_chip": on_chip,
        "param_bytes_off_chip": off_chip,
        "on_chip_capacity_bytes": ON_CHIP_BYTES,
        "blockers": blockers,
    }


def require_compilable(model: TFLiteModel) -> None:
    """Raise :class:`~edgekit.errors.InputError` with the first model-wide blocker, if any.

    Example:
        >>> require_compilable(read_tflite("model_fp32.tflite"))  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: model_fp32.tflite: not fully 8-bit quantized (float32): ...
    """
    if blockers := model_blockers(model):
        raise InputError(f"{model.path}: {blockers[0]}")

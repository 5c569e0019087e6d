"""Which ops of a TFLite model LiteRT's GPU delegate would not take, and why.

The rules are the open-source GPU delegate's (``tflite/delegates/gpu/common/model_builder.cc``
and ``tflite/tools/versioning/gpu_compatibility.cc``), the delegate phones use through
``Interpreter`` + ``GpuDelegate``:

- every tensor of an op must have rank ≤ 4, and its runtime (non-constant) tensors must be
  float32 / float16, or int8 / uint8 (quantized models run in float on the GPU: weights are
  dequantized once, 8-bit inputs and outputs are converted on the CPU at each call);
  int16 (16x8 models) and int32 are refused, except where an op takes integer indices;
- the op must have a parser, at a version no newer than the one it knows, and pass that
  op's own checks (a constant shape for RESHAPE, beta = 1 for SOFTMAX, rank 3-4 and no masks
  for STRIDED_SLICE, ...); UNIDIRECTIONAL_SEQUENCE_LSTM, ARG_MAX, SQUEEZE and others have none;
- only the largest partition of supported ops is delegated (``max_delegated_partitions`` = 1);
  everything else runs on the CPU.

LiteRT's newer ``CompiledModel`` GPU accelerator (ML Drift) is closed source; at run time its
own answer (``is_fully_accelerated()``) is what ``bench`` and ``validate`` report.

Example:
    >>> from edgekit.formats.tflite import read_tflite
    >>> report = gpu_preflight(read_tflite("../shared/coral/keras_lstm_mnist_ptq.tflite"))  # doctest: +SKIP
    >>> report["fully_accelerated"], report["unsupported_ops"][0]["op"]  # doctest: +SKIP
    (False, 'UNIDIRECTIONAL_SEQUENCE_LSTM')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgekit.formats.tflite import OpInfo, SubgraphInfo, TensorInfo, TFLiteModel

Check = Callable[[OpInfo, SubgraphInfo], str | None]
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT", 6: "SIGMOID"}
RUNTIME_DTYPES = {"float32", "float16", "int8", "uint8"}
INTEGER_INDEX_OPS = {"GATHER", "CAST", "ONE_HOT", "EMBEDDING_LOOKUP"}


def _runtime_inputs(op: OpInfo, graph: SubgraphInfo) -> list[TensorInfo]:
    return [t for i in op.inputs if (t := graph.tensor(i)) is not None and not t.is_constant]


def _activation(op: OpInfo, _graph: SubgraphInfo) -> str | None:
    fused = op.options.get("fused_activation_function", 0)
    return f"fused activation {ACTIVATIONS.get(fused, fused)} is not supported" if fused == 5 else None


def _runtime_count(low: int, high: int) -> Check:
    def check(op: OpInfo, graph: SubgraphInfo) -> str | None:
        n = len(_runtime_inputs(op, graph))
        return None if low <= n <= high else f"takes {low}-{high} runtime inputs, has {n}"

    return check


def _constant_input(position: int, what: str) -> Check:
    def check(op: OpInfo, graph: SubgraphInfo) -> str | None:
        if len(op.inputs) <= position:
            return None
        t = graph.tensor(op.inputs[position])
        return None if t is None or t.is_constant else f"{what} must be constant"

    return check


def _rank_between(low: int, high: int) -> Check:
    def check(op: OpInfo, graph: SubgraphInfo) -> str | None:
        t = graph.tensor(op.inputs[0])
        rank = len(t.shape) if t is not None else 0
        return None if low <= rank <= high else f"input rank {rank} (needs {low}-{high})"

    return check


def _softmax(op: OpInfo, _graph: SubgraphInfo) -> str | None:
    beta = op.options.get("beta", 1.0)
    return None if beta == 1.0 else f"beta {beta:g} (needs 1)"


def _strided_slice(op: OpInfo, _graph: SubgraphInfo) -> str | None:
    masks = [m for m in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask") if op.options.get(m)]
    return f"{', '.join(masks)} not supported" if masks else None


def _resize_bilinear(op: OpInfo, _graph: SubgraphInfo) -> str | None:
    both = op.options.get("align_corners") and op.options.get("half_pixel_centers")
    return "align_corners and half_pixel_centers both set" if both else None


def _fully_connected(op: OpInfo, _graph: SubgraphInfo) -> str | None:
    return "shuffled weights format" if op.options.get("weights_format", 0) != 0 else None


def _depthwise(op: OpInfo, graph: SubgraphInfo) -> str | None:
    ranks = [len(t.shape) for i in op.inputs[:2] if (t := graph.tensor(i)) is not None]
    return None if all(r == 4 for r in ranks) else "input and filter must be 4-D"


def _transpose(op: OpInfo, graph: SubgraphInfo) -> str | None:
    perm = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    size = perm.num_elements if perm is not None else 0
    return None if 2 <= size <= 4 else f"permutation of {size} axes (needs 2-4)"


def _gather(op: OpInfo, graph: SubgraphInfo) -> str | None:
    idx = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    ok = idx is not None and idx.dtype == "int32" and len(idx.shape) <= 1
    return None if ok else "indices must be 1-D int32"


def _batch_matmul(op: OpInfo, graph: SubgraphInfo) -> str | None:
    rhs = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if rhs is not None and rhs.is_constant and len(rhs.shape) != 2:
        return "a constant second operand must be 2-D"
    return None


def _binary(op: OpInfo, graph: SubgraphInfo) -> str | None:
    return _runtime_count(1, 2)(op, graph) or _activation(op, graph)


# op -> (highest op version the delegate parses, checks)
_ELEMENTWISE = ("ABS", "COS", "SIN", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN",
                "SQRT", "SQUARE", "TANH")  # fmt: skip
_BINARY = ("SUB", "DIV", "POW", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "FLOOR_DIV", "FLOOR_MOD")
RULES: dict[str, tuple[int | None, tuple[Check, ...]]] = {
    "ADD": (2, (_binary,)),
    "MUL": (3, (_binary,)),
    **{name: (2, (_binary,)) for name in _BINARY},
    **{name: (2, (_runtime_count(1, 1),)) for name in _ELEMENTWISE},
    "CONV_2D": (6, (_activation, _runtime_count(1, 2))),
    "DEPTHWISE_CONV_2D": (6, (_activation, _depthwise)),
    "TRANSPOSE_CONV": (3, (_runtime_count(1, 2),)),
    "FULLY_CONNECTED": (9, (_activation, _fully_connected, _runtime_count(1, 2))),
    "BATCH_MATMUL": (None, (_batch_matmul,)),
    "AVERAGE_POOL_2D": (2, (_activation, _runtime_count(1, 1))),
    "MAX_POOL_2D": (2, (_activation, _runtime_count(1, 1))),
    "CONCATENATION": (2, (_activation,)),
    "RESHAPE": (1, (_runtime_count(1, 1), _constant_input(1, "the shape"))),
    "SOFTMAX": (2, (_softmax,)),
    "STRIDED_SLICE": (4, (_strided_slice, _rank_between(3, 4))),
    "SLICE": (2, (_rank_between(3, 4),)),
    "GATHER": (1, (_gather,)),
    "SPLIT": (None, ()),
    "SPLIT_V": (None, ()),
    "PACK": (None, ()),
    "UNPACK": (None, ()),
    "MEAN": (None, (_constant_input(1, "the axes"),)),
    **{name: (None, (_constant_input(1, "the axes"),)) for name in ("SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD")},
    "PAD": (2, (_runtime_count(1, 1), _rank_between(1, 4))),
    "PADV2": (2, (_runtime_count(1, 1), _rank_between(1, 4))),
    "MIRROR_PAD": (2, (_runtime_count(1, 1), _rank_between(1, 4))),
    "RESIZE_BILINEAR": (3, (_runtime_count(1, 1), _resize_bilinear)),
    "RESIZE_NEAREST_NEIGHBOR": (3, (_runtime_count(1, 1),)),
    "TRANSPOSE": (4, (_runtime_count(1, 1), _transpose)),
    "TILE": (None, (_runtime_count(1, 1),)),
    "DEPTH_TO_SPACE": (None, ()),
    "SPACE_TO_DEPTH": (2, ()),
    "CAST": (None, ()),
    "SELECT": (1, ()),
    "SELECT_V2": (1, ()),
    "HARD_SWISH": (None, (_runtime_count(1, 1),)),
    "RELU": (2, ()),
    "RELU6": (2, ()),
    "RELU_N1_TO_1": (2, ()),
    "LEAKY_RELU": (2, ()),
    "PRELU": (1, ()),
    "LSTM": (4, ()),
    "DEQUANTIZE": (3, ()),
    "QUANTIZE": (2, (_runtime_count(1, 1),)),
    "CUSTOM:Convolution2DTransposeBias": (None, ()),
    "CUSTOM:MaxPoolingWithArgmax2D": (None, ()),
    "CUSTOM:MaxUnpooling2D": (None, ()),
    "CUSTOM:Resampler": (None, ()),
}


def op_reason(op: OpInfo, graph: SubgraphInfo) -> str | None:
    """Why the GPU delegate would not take ``op`` (None: it would).

    Example:
        >>> op_reason(OpInfo("ARG_MAX", (0, 1), (2,)), graph)  # doctest: +SKIP
        'no GPU kernel for ARG_MAX'
    """
    rule = RULES.get(op.name)
    if rule is None:
        return f"no GPU kernel for {op.name}"
    max_version, checks = rule
    if max_version is not None and op.version > max_version:
        return f"{op.name} version {op.version} (the delegate parses up to {max_version})"
    for i in [*op.inputs, *op.outputs]:
        t = graph.tensor(i)
        if t is None:
            continue
        if len(t.shape) >= 5:
            return f"tensor {t.name!r} has rank {len(t.shape)} (at most 4)"
        if not t.is_constant and t.dtype not in RUNTIME_DTYPES:
            integer_ok = op.name in INTEGER_INDEX_OPS and t.dtype in ("int32", "int64", "bool")
            if not integer_ok:
                return f"tensor {t.name!r} is {t.dtype} (the GPU takes float32/float16, int8/uint8)"
    for check in checks:
        if reason := check(op, graph):
            return reason
    return None


def _largest_run(supported: list[bool]) -> int:
    """Length of the longest run of supported ops in execution order."""
    best, start = 0, None
    for i, ok in enumerate([*supported, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            best, start = max(best, i - start), None
    return best


def gpu_preflight(model: TFLiteModel) -> dict[str, Any]:
    """The GPU delegate's view of a model: unsupported ops (with reasons) and what would run where.

    ``fully_accelerated`` is True only when every op of every subgraph is supported (one
    partition covers the graph). Otherwise the delegate takes the largest run of supported ops
    (``ops_on_gpu``) and the rest run on the CPU; ``target`` is then ``gpu+cpu`` or ``cpu``.

    Example:
        >>> gpu_preflight(model)["target"]  # doctest: +SKIP
        'gpu'
    """
    unsupported: list[dict[str, Any]] = []
    on_gpu = total = 0
    for g_index, graph in enumerate(model.subgraphs):
        reasons = [op_reason(op, graph) for op in graph.ops]
        total += len(reasons)
        for index, (op, reason) in enumerate(zip(graph.ops, reasons, strict=True)):
            if reason is not None:
                unsupported.append({"index": index, "subgraph": g_index, "op": op.name, "reason": reason})
        if g_index == 0:
            on_gpu = _largest_run([r is None for r in reasons])
    if len(model.subgraphs) > 1:  # control flow (WHILE / IF) stays on the CPU, and so does what is inside
        on_gpu = 0 if unsupported else on_gpu
    fully = not unsupported
    return {
        "fully_accelerated": fully,
        "target": "gpu" if fully else ("gpu+cpu" if on_gpu else "cpu"),
        "ops_total": total,
        "ops_on_gpu": total if fully else on_gpu,
        "ops_on_cpu": 0 if fully else total - on_gpu,
        "unsupported_ops": unsupported,
        "rules": "open-source TFLite GPU delegate (model_builder.cc, gpu_compatibility.cc)",
    }

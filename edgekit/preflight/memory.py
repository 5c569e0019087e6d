"""Memory a TFLite model needs: constant parameters and the peak of its activation arena.

TFLite keeps every non-constant tensor of a subgraph in one arena. Its arena
planner (``tflite::ArenaPlanner`` with ``SimpleMemoryArena``) gives each tensor a
lifetime — from the op that writes it to the last op that reads it; graph inputs
and outputs are never freed — then places the tensors alive from the first op
to the end first, the rest largest first, each in the tightest gap between
tensors already placed that are alive at the same time, aligned to 64 bytes. The arena's size is the
highest end offset. :func:`plan_arena` does the same placement, so the figure is
what the interpreter allocates for tensors; kernel scratch buffers (im2col,
XNNPACK's packed weights) come on top.

Example:
    >>> from edgekit.formats.tflite import read_tflite
    >>> memory = model_memory(read_tflite("../shared/coral/mobilenet_v1_0.25_128_quant.tflite"))  # doctest: +SKIP
    >>> memory["param_bytes"], memory["activation_peak_bytes"]  # doctest: +SKIP
    (479116, 98304)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.formats.tflite import SubgraphInfo, TensorInfo, TFLiteModel

ALIGNMENT = 64  # tflite::kDefaultTensorAlignment
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}  # fmt: skip
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Lifetime:
    """A tensor's bytes and the ops during which it must stay in the arena (inclusive)."""

    tensor: int
    size: int
    first: int
    last: int


def tensor_bytes(tensor: TensorInfo) -> int:
    """Bytes of one tensor (unknown dimensions counted as 1; int4 packed two per byte).

    Example:
        >>> from edgekit.formats.tflite import TensorInfo
        >>> tensor_bytes(TensorInfo("x", (1, 8), (1, 8), "float32", 0, False))
        32
    """
    if tensor.dtype == "int4":
        return (tensor.num_elements + 1) // 2
    if tensor.dtype in ("string", "resource", "variant"):
        return 0
    try:
        itemsize = np.dtype(tensor.dtype).itemsize
    except TypeError:
        itemsize = 4
    return tensor.num_elements * itemsize


def lifetimes(graph: SubgraphInfo) -> list[Lifetime]:
    """Lifetime of each arena tensor of a subgraph: non-constant, non-variable, used by the graph.

    Example:
        >>> [l.first for l in lifetimes(model.subgraphs[0])][:2]  # doctest: +SKIP
        [0, 0]
    """
    first: dict[int, int] = {i: 0 for i in graph.inputs}
    last: dict[int, int] = {}
    for step, op in enumerate(graph.ops):
        for i in op.inputs:
            if i >= 0:
                first.setdefault(i, step)
                last[i] = step
        for i in op.outputs:
            if i >= 0:
                first.setdefault(i, step)
                last[i] = max(last.get(i, step), step)
    end = max(len(graph.ops) - 1, 0)
    for i in [*graph.inputs, *graph.outputs]:  # the interpreter never frees these
        first.setdefault(i, 0)
        last[i] = end
    result = []
    for i, start in first.items():
        t = graph.tensors[i]
        if t.is_constant or t.is_variable:
            continue
        result.append(Lifetime(i, tensor_bytes(t), start, last.get(i, start)))
    return result


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_arena(tensors: list[Lifetime]) -> dict[int, int]:
    """Offsets as TFLite's planner places them: whole-run tensors first, then largest first, each in
    the tightest gap among tensors alive at the same time.

    Example:
        >>> plan_arena([Lifetime(0, 100, 0, 1), Lifetime(1, 50, 1, 2), Lifetime(2, 100, 2, 3)])
        {0: 0, 2: 0, 1: 128}
    """
    end = max((t.last for t in tensors), default=0)
    placed: list[tuple[int, Lifetime]] = []  # (offset, tensor), kept sorted by offset
    offsets: dict[int, int] = {}
    whole_run = [t for t in tensors if t.first == 0 and t.last == end]
    rest = sorted((t for t in tensors if not (t.first == 0 and t.last == end)), key=lambda t: (-t.size, t.first))
    for item in sorted(whole_run, key=lambda t: t.tensor) + rest:
        best, best_fit, current = None, None, 0
        for offset, other in placed:
            if other.last < item.first or other.first > item.last:
                continue
            aligned = _align(current)
            if aligned + item.size <= offset and (best_fit is None or offset - current < best_fit):
                best, best_fit = aligned, offset - current
            current = max(current, offset + other.size)
            if best_fit == 0:
                break
        offset = best if best is not None else _align(current)
        offsets[item.tensor] = offset
        placed.append((offset, item))
        placed.sort(key=lambda p: p[0])
    return offsets


def arena_peak(graph: SubgraphInfo) -> int:
    """Bytes of the activation arena TFLite would allocate for one subgraph.

    Example:
        >>> arena_peak(model.subgraphs[0])  # doctest: +SKIP
        98304
    """
    tensors = lifetimes(graph)
    offsets = plan_arena(tensors)
    return max((offsets[t.tensor] + t.size for t in tensors), default=0)


def param_bytes(model: TFLiteModel) -> int:
    """Bytes of constant data (weights, biases, lookup tables), each buffer counted once.

    Example:
        >>> param_bytes(model)  # doctest: +SKIP
        479116
    """
    seen = {t.buffer for g in model.subgraphs for t in g.tensors if t.is_constant}
    return int(sum(len(model.buffers[b]) for b in seen))


def model_memory(model: TFLiteModel) -> dict[str, Any]:
    """Parameter bytes, activation arena peak and persistent state bytes of a TFLite model.

    Control-flow subgraphs (WHILE / IF bodies) get arenas of their own; they are added to the
    main subgraph's peak, the upper bound when a body runs at the peak of its caller.

    Example:
        >>> sorted(model_memory(model))  # doctest: +SKIP
        ['activation_peak_bytes', 'param_bytes', 'state_bytes', 'total_bytes']
    """
    activations = sum(arena_peak(g) for g in model.subgraphs)
    state = sum(tensor_bytes(t) for g in model.subgraphs for t in g.tensors if t.is_variable)
    params = param_bytes(model)
    return {
        "param_bytes": params,
        "activation_peak_bytes": int(activations),
        "state_bytes": int(state),
        "total_bytes": int(params + activations + state),
    }


def parse_bytes(text: str) -> int:
    """A byte count from ``512K``, ``1.5M``, ``2GiB`` or ``4096`` (K = 1024).

    Example:
        >>> parse_bytes("512K"), parse_bytes("1.5MB"), parse_bytes("4096")
        (524288, 1572864, 4096)
        >>> parse_bytes("lots")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: cannot read 'lots' as a size: use bytes or K, M, G (e.g. 512K, 8M)
    """
    match = _BUDGET.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise InputError(f"cannot read {text!r} as a size: use bytes or K, M, G (e.g. 512K, 8M)")
    return int(float(match.group(1)) * _UNITS[unit])


def fits(memory: dict[str, Any], budget: int) -> dict[str, Any]:
    """Whether parameters + activations + state fit in ``budget`` bytes of RAM.

    Example:
        >>> fits({"total_bytes": 600_000}, parse_bytes("512K"))["fits"]
        False
    """
    return {"budget_bytes": budget, "needed_bytes": memory["total_bytes"], "fits": memory["total_bytes"] <= budget,
            "headroom_bytes": budget - memory["total_bytes"]}  # fmt: skip


def onnx_memory(model: Any) -> dict[str, Any]:
    """Parameter bytes and planned activation peak of an ONNX graph (nodes in file order).

    The activation figure needs every intermediate value's shape and type in the file's
    ``value_info`` (symbolic dimensions count as 1); where one is missing it is ``None`` and
    ``activation_note`` names the value. ONNX Runtime's own planner may reuse memory differently.

    Example:
        >>> onnx_memory(read_onnx("model.onnx"))["param_bytes"]  # doctest: +SKIP
        1204
    """

    def nbytes(dtype: str, dims: tuple[Any, ...]) -> int | None:
        try:
            itemsize = np.dtype(dtype).itemsize
        except TypeError:
            return None
        return int(np.prod([d if isinstance(d, int) and d > 0 else 1 for d in dims], dtype=np.int64)) * itemsize

    params = sum(nbytes(dtype, dims) or 0 for dtype, dims in model.initializers.values())
    first: dict[str, int] = {v.name: 0 for v in model.inputs}
    last: dict[str, int] = {}
    for step, node in enumerate(model.nodes):
        for name in [*node.inputs, *node.outputs]:
            if name and name not in model.initializers:
                first.setdefault(name, step)
                last[name] = step
    end = max(len(model.nodes) - 1, 0)
    for v in [*model.inputs, *model.outputs]:
        first.setdefault(v.name, 0)
        last[v.name] = end
    tensors, missing = [], None
    for index, (name, start) in enumerate(first.items()):
        size = nbytes(model.value_dtypes.get(name, "unknown"), model.value_shapes.get(name, ()))
        if size is None or name not in model.value_shapes:
            missing = missing or name
            continue
        tensors.append(Lifetime(index, size, start, last.get(name, start)))
    peak = None
    if missing is None:
        offsets = plan_arena(tensors)
        peak = max((offsets[t.tensor] + t.size for t in tensors), default=0)
    memory = {"param_bytes": int(params), "activation_peak_bytes": peak, "state_bytes": 0,
              "total_bytes": int(params + peak) if peak is not None else None}  # fmt: skip
    if missing is not None:
        memory["activation_note"] = f"value {missing!r} has no shape/type in the file"
    return memory


def measured_arena_span(path: str | Path) -> int:
    """Bytes LiteRT's interpreter really spans with a model's activation tensors (default delegates off).

    The address range from the lowest to the highest end of the main subgraph's arena tensors
    after ``allocate_tensors()``: what :func:`arena_peak` predicts, plus any kernel scratch
    placed between them.

    Example:
        >>> measured_arena_span("../shared/coral/mobilenet_v2_1.0_224_quant.tflite")  # doctest: +SKIP
        1655808
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit.formats.tflite import read_tflite

    interp = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp.allocate_tensors()
    spans = [(interp.tensor(t.tensor)().ctypes.data, t.size) for t in lifetimes(read_tflite(path).subgraphs[0])]
    return max(a + n for a, n in spans) - min(a for a, _ in spans)

"""``edgekit inspect``: what a ``.tflite`` or ``.onnx`` file holds, without running it.

Example:
    >>> report = inspect_model("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")  # doctest: +SKIP
    >>> report["ops_total"], report["quantization"], report["edgetpu_compiled"]  # doctest: +SKIP
    (31, 'uint8', False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.contract import contract_of_file, file_contract
from edgekit.errors import InputError
from edgekit.formats.metadata import read_metadata
from edgekit.formats.onnx import OnnxModel, num_elements, parse_onnx
from edgekit.formats.tflite import (
    OpInfo,
    SubgraphInfo,
    TFLiteModel,
    parse_tflite,
    quantization_kind,
)
from edgekit.preflight.edgetpu import edgetpu_preflight
from edgekit.preflight.gpu import gpu_preflight
from edgekit.preflight.memory import fits, model_memory, onnx_memory
from edgekit.runtime.files import model_format, read_model_bytes
from edgekit.runtime.targets import TARGETS
from edgekit.runtime.tflite import _spec as tflite_spec


def _contract(path: Path, report: dict[str, Any], model: TFLiteModel | None) -> dict[str, Any]:
    """The recorded contract (the convert record beside the file), else what the file itself says."""
    if model is not None:
        found, source = contract_of_file(path, model)
        return {**found.to_dict(), "source": source}
    return {**file_contract(report["inputs"], report["outputs"], {}).to_dict(), "source": "the file alone"}


def inspect_model(path: str | Path, *, target: str | None = None, ram_budget: int | None = None) -> dict[str, Any]:
    """Report on a model file: format, size, I/O, ops, params, MACs, quantization, metadata, memory.

    ``target="edgetpu"`` adds an ``edgetpu`` pre-flight (which ops the compiler would map, which
    stay on the CPU and why, on-chip versus streamed parameters); ``target="gpu"`` adds a ``gpu``
    pre-flight (ops the GPU delegate cannot take). ``ram_budget`` (bytes) adds ``ram_budget``:
    whether parameters + activation arena + state fit.

    Example:
        >>> inspect_model("model.h5")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: model.h5: no such file
    """
    if target not in (None, *TARGETS):
        raise InputError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})")
    blob = read_model_bytes(path)
    if model_format(path) == "tflite":
        model = parse_tflite(blob, str(path))
        report = _inspect_tflite(model)
        report["memory"] = model_memory(model)
        report["edgekit_metadata"] = read_metadata(model)
        if target == "edgetpu" or model.edgetpu_compiled:
            report["edgetpu"] = edgetpu_preflight(model)
        if target == "gpu":
            report["gpu"] = gpu_preflight(model)
    else:
        onnx_model = parse_onnx(blob, str(path))
        report = _inspect_onnx(onnx_model)
        report["memory"] = onnx_memory(onnx_model)
        report["edgekit_metadata"] = None
        if target == "edgetpu":
            raise InputError(f"{path}: the Edge TPU runs TFLite models only (convert with --to edgetpu)")
        if target == "gpu":
            report["gpu"] = {
                "fully_accelerated": None,
                "unsupported_ops": [],
                "note": "ONNX Runtime's CUDA provider assigns nodes when the session is created: "
                "run bench --target gpu where onnxruntime-gpu is installed",
            }
    report["contract"] = _contract(Path(path), report, model if model_format(path) == "tflite" else None)
    if ram_budget is not None:
        report["ram_budget"] = fits(report["memory"], ram_budget)
    return report


# -- TFLite ---------------------------------------------------------------------------------


def _op_macs(op: OpInfo, graph: SubgraphInfo) -> int:
    """Multiply-accumulates of one op, from its weight and output shapes (0 for cheap ops)."""
    t = graph.tensors
    ins = [graph.tensor(i) for i in op.inputs]
    out = t[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
    if out is None or len(ins) < 2 or ins[1] is None:
        return 0
    weight = ins[1]
    if op.name in ("CONV_2D", "CONV_3D", "FULLY_CONNECTED"):
        per_output = int(np.prod(weight.shape[1:])) if op.name != "CONV_3D" else int(np.prod(weight.shape[:-1]))
        return out.num_elements * per_output
    if op.name == "DEPTHWISE_CONV_2D":
        return out.num_elements * int(np.prod(weight.shape[1:3]))
    if op.name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[2] is not None:
        return ins[2].num_elements * int(np.prod(weight.shape[:3]))
    if op.name == "BATCH_MATMUL" and ins[0] is not None and ins[0].shape:
        return out.num_elements * max(ins[0].shape[-1], 1)
    if op.name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN", "GRU"):
        steps = out.num_elements // max(out.shape[-1], 1)  # batch x time
        return steps * sum(w.num_elements for w in ins[1:] if w is not None and w.is_constant and len(w.shape) == 2)
    return 0


def _metadata_view(metadata: dict[str, bytes]) -> dict[str, str]:
    view = {}
    for name, data in metadata.items():
        text = data.rstrip(b"\0")
        printable = text and len(text) <= 200 and all(32 <= b < 127 for b in text)
        view[name] = text.decode() if printable else f"<{len(data)} bytes>"
    return view


def _inspect_tflite(model: TFLiteModel) -> dict[str, Any]:
    main = model.subgraphs[0]
    histogram = model.op_histogram()
    constants: dict[int, int] = {}
    macs = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if tensor.is_constant:
                constants[tensor.buffer] = tensor.num_elements
        macs += sum(_op_macs(op, graph) for op in graph.ops)
    return {
        "path": model.path,
        "format": "tflite",
        "size_bytes": model.size_bytes,
        "inputs": [tflite_spec(main.tensors[i], model.io_name(i)).to_dict() for i in main.inputs],
        "outputs": [tflite_spec(main.tensors[i], model.io_name(i)).to_dict() for i in main.outputs],
        "ops_total": sum(histogram.values()),
        "op_histogram": histogram,
        "subgraphs": len(model.subgraphs),
        "params": int(sum(constants.values())),
        "macs": int(macs),
        "quantization": quantization_kind(model),
        "signatures": model.signatures,
        # Fused RNN cells keep state in variable tensors that persist across invoke(): an app must call
        # reset_all_variables() (Android: resetVariableTensors()) before each independent inference.
        "variable_tensors": model.variable_tensors,
        "needs_state_reset": bool(model.variable_tensors),
        "metadata": _metadata_view(model.metadata),
        "description": model.description,
        "edgetpu_compiled": model.edgetpu_compiled,
        "edgetpu": None,
    }


# -- ONNX -----------------------------------------------------------------------------------

ONNX_DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "com.microsoft:DynamicQuantizeMatMul"}
ONNX_QUANT_DTYPES = {"int8": "int8", "uint8": "uint8", "int16": "int16x8", "uint16": "int16x8"}


def _onnx_quantization(model: OnnxModel) -> str:
    ops = set(model.op_histogram())
    if any(op.endswith("QuantizeLinear") and "Dynamic" not in op for op in ops) or any("QLinear" in op for op in ops):
        zp_types = {
            model.initializers[n.inputs[2]][0]
            for n in model.nodes
            if n.op.endswith(("QuantizeLinear", "DequantizeLinear"))
            and len(n.inputs) > 2
            and n.inputs[2] in model.initializers
        }
        zp_types -= {"int32"}  # biases: int32 in every 8-bit scheme
        if zp_types == {"int8", "uint8"}:
            return "int8"  # u8 activations, s8 weights: ONNX Runtime's fast 8-bit scheme on x86
        kinds = {ONNX_QUANT_DTYPES.get(t, "mixed") for t in zp_types} or {"int8"}
        return kinds.pop() if len(kinds) == 1 else "mixed"
    if ops & ONNX_DYNAMIC_OPS:
        return "dynamic"
    float_inits = [d for d, dims in model.initializers.values() if d.startswith("float") and len(dims) >= 2]
    return "float16" if float_inits and all(d == "float16" for d in float_inits) else "float32"


def _onnx_macs(model: OnnxModel) -> tuple[int, bool]:
    """Estimate MACs of Conv/Gemm/MatMul with constant weights; flag if any shape was unknown."""
    macs, complete = 0, True
    for node in model.nodes:
        if node.op not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(node.inputs) < 2:
            continue
        weight = model.initializers.get(node.inputs[1])
        if weight is None:
            complete = False
            continue
        dims = weight[1]
        out = model.value_shapes.get(node.outputs[0]) if node.outputs else None
        out_elems = num_elements(tuple(d for d in out if isinstance(d, int))) if out else None
        if node.op in ("Gemm", "MatMul"):
            k, n = (dims[0], dims[1]) if len(dims) == 2 else (1, num_elements(dims))
            rows = out_elems // max(n, 1) if out_elems else 1
            complete &= out_elems is not None
            macs += rows * k * n
        elif out_elems is not None:
            macs += out_elems * num_elements(dims[1:])
        else:
            complete = False
    return macs, complete


def _inspect_onnx(model: OnnxModel) -> dict[str, Any]:
    histogram = model.op_histogram()
    macs, complete = _onnx_macs(model)

    def io(v: Any) -> dict[str, Any]:
        return {"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "quantization": None}

    return {
        "path": model.path,
        "format": "onnx",
        "size_bytes": model.size_bytes,
        "inputs": [io(v) for v in model.inputs],
        "outputs": [io(v) for v in model.outputs],
        "ops_total": sum(histogram.values()),
        "op_histogram": histogram,
        "params": int(sum(num_elements(dims) for _, dims in model.initializers.values())),
        "macs": int(macs),
        "macs_complete": complete,
        "quantization": _onnx_quantization(model),
        "ir_version": model.ir_version,
        "opsets": model.opsets,
        "producer": model.producer,
        "signatures": {},
        "variable_tensors": [],
        "needs_state_reset": False,
        "metadata": model.metadata,
        "edgetpu_compiled": False,
        "edgetpu": None,
    }

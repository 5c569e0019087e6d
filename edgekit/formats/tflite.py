"""Read a TFLite flatbuffer into plain Python objects, verifying it on the way.

The reader walks every table of the model with the generated schema that ships
with LiteRT. Every read is bounds-checked by Python, so a truncated or garbled
file raises :class:`~edgekit.errors.ModelFormatError` here instead of reaching
a native interpreter.

Example:
    >>> model = read_tflite("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")  # doctest: +SKIP
    >>> model.op_histogram()["CONV_2D"]  # doctest: +SKIP
    14
"""

from __future__ import annotations

import collections
import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgekit.errors import ModelFormatError
from edgekit.formats.tflite_checks import check_structure

TFLITE_IDENTIFIER = b"TFL3"
QUANT_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
ACTIVATION_DTYPES = {"float32", "float16", "int8", "uint8", "int16"}
INTEGER_ACTIVATIONS = {"int8": "int8", "uint8": "uint8", "int16": "int16x8"}
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


@cache
def schema() -> ModuleType:
    """The generated TFLite schema module (LiteRT's copy, else TensorFlow's).

    Example:
        >>> hasattr(schema(), "ModelT")
        True
    """
    for name in ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ModelFormatError("no TFLite schema found: install ai-edge-litert")


@cache
def _enum_names(enum_class_name: str) -> dict[int, str]:
    enum = getattr(schema(), enum_class_name)
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def builtin_op_name(code: int) -> str:
    """Name of a TFLite builtin operator code.

    Example:
        >>> builtin_op_name(3)
        'CONV_2D'
    """
    return _enum_names("BuiltinOperator").get(code, f"BUILTIN_{code}")


def tensor_type_name(code: int) -> str:
    """numpy-style lower-case name of a TFLite tensor type.

    Example:
        >>> tensor_type_name(9)
        'int8'
    """
    return _enum_names("TensorType").get(code, f"type{code}").lower()


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph."""

    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    buffer: int
    is_constant: bool
    is_variable: bool = False
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    is_sparse: bool = False  # its buffer holds TFLite's compressed sparse format, not the dense values

    @property
    def num_elements(self) -> int:
        """Element count, with unknown (-1) dimensions counted as 1."""
        return int(np.prod([max(d, 1) for d in self.shape], dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True)
class OpInfo:
    """One operator: its resolved name, tensor indices (-1 = absent optional input) and builtin options.

    ``options`` holds the builtin options table's fields in snake case (``{"align_corners": True}``),
    empty for ops without options.
    """

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    version: int = 1
    options_type: str = field(default="", compare=False, hash=False)  # the union's type name ("Conv2DOptions")


@dataclass
class SubgraphInfo:
    """One subgraph: tensors, operators and its own input/output tensor indices."""

    name: str
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: list[int]
    outputs: list[int]

    def tensor(self, index: int) -> TensorInfo | None:
        """The tensor at ``index``; None for -1 (an absent optional operand).

        Example:
            >>> graph.tensor(-1) is None  # doctest: +SKIP
            True
        """
        return self.tensors[index] if index >= 0 else None


@dataclass
class TFLiteModel:
    """A parsed, verified TFLite model."""

    path: str
    size_bytes: int
    version: int
    description: str
    subgraphs: list[SubgraphInfo]
    buffers: list[np.ndarray]
    metadata: dict[str, bytes] = field(default_factory=dict)
    signatures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    signature_tensors: dict[str, dict[int, str]] = field(default_factory=dict)

    def io_name(self, tensor_index: int, subgraph: int = 0) -> str:
        """The signature name of an input/output tensor of the main subgraph, else the tensor's own name.

        Example:
            >>> model.io_name(model.subgraphs[0].outputs[0])  # doctest: +SKIP
            'cls'
        """
        if subgraph == 0 and len(self.signature_tensors) == 1:
            names = next(iter(self.signature_tensors.values()))
            if tensor_index in names:
                return names[tensor_index]
        return self.subgraphs[subgraph].tensors[tensor_index].name

    @property
    def variable_tensors(self) -> list[str]:
        """Names of variable tensors: state that persists across ``invoke()`` (fused RNN cells)."""
        return [t.name for sg in self.subgraphs for t in sg.tensors if t.is_variable]

    def all_ops(self) -> list[OpInfo]:
        """Operators of every subgraph, in order."""
        return [op for sg in self.subgraphs for op in sg.ops]

    def op_histogram(self) -> dict[str, int]:
        """Operator name → count over all subgraphs, most frequent first."""
        counts = collections.Counter(op.name for op in self.all_ops())
        return dict(counts.most_common())

    @property
    def edgetpu_compiled(self) -> bool:
        """True when the Edge TPU compiler folded ops into ``edgetpu-custom-op``."""
        return any(op.name == f"CUSTOM:{EDGETPU_CUSTOM_OP}" for op in self.all_ops())


def quantization_kind(model: TFLiteModel) -> str:
    """How a model is quantized: float32, float16, dynamic, int8, uint8, int16x8 or mixed.

    Classified by the dtypes the compute ops work in.

    An op's activation dtype is that of its outputs and its first input (cell
    states of integer LSTMs are int16 in an int8 model, so other inputs do not
    count). QUANTIZE/DEQUANTIZE at the boundaries do not count, nor do custom
    ops unless the model has nothing else (a fully compiled Edge TPU model).
    """
    ops = [(op, g) for g in model.subgraphs for op in g.ops]
    compute = [(op, g) for op, g in ops if op.name not in QUANT_BOUNDARY_OPS and not op.name.startswith("CUSTOM:")]
    compute = compute or [(op, g) for op, g in ops if op.name.startswith("CUSTOM:")]
    activations: set[str] = set()
    weights: set[str] = set()
    for op, graph in compute:
        for pos, i in enumerate(op.inputs):
            tensor = graph.tensor(i)
            if tensor is None:
                continue
            if tensor.is_constant and len(tensor.shape) >= 2:
                weights.add(tensor.dtype)
            elif pos == 0 and not tensor.is_constant and tensor.dtype in ACTIVATION_DTYPES:
                activations.add(tensor.dtype)
        activations |= {graph.tensors[i].dtype for i in op.outputs if i >= 0} & ACTIVATION_DTYPES
    dequantized_f16 = any(
        op.name == "DEQUANTIZE" and any(g.tensors[i].is_constant and g.tensors[i].dtype == "float16" for i in op.inputs)
        for op, g in ops
    )
    integer = activations & set(INTEGER_ACTIVATIONS)
    if not integer:
        if weights & {"int8", "int4"}:
            return "dynamic"
        return "float16" if dequantized_f16 or "float16" in weights else "float32"
    if activations - set(INTEGER_ACTIVATIONS) or len(integer) > 1:
        return "mixed"
    return INTEGER_ACTIVATIONS[integer.pop()]


def _buffer_data(buf: Any, blob: bytes) -> np.ndarray:
    if buf.data is not None and len(buf.data):
        return np.asarray(buf.data, dtype=np.uint8)
    if buf.offset > 1:  # models > 2 GB keep buffers outside the flatbuffer
        end = buf.offset + buf.size
        if end > len(blob):
            raise ModelFormatError(f"buffer at offset {buf.offset} runs past the end of the file")
        return np.frombuffer(blob, dtype=np.uint8, count=buf.size, offset=buf.offset)
    return np.empty(0, dtype=np.uint8)


def _decode(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _tensor(t: Any, buffers: list[np.ndarray]) -> TensorInfo:
    q = t.quantization
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    sig = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
    if not 0 <= t.buffer < max(len(buffers), 1):
        raise ModelFormatError(f"tensor {_decode(t.name)!r} points at missing buffer {t.buffer}")
    return TensorInfo(
        name=_decode(t.name),
        shape=shape,
        shape_signature=sig,
        dtype=tensor_type_name(t.type),
        buffer=t.buffer,
        is_constant=bool(t.buffer and len(buffers[t.buffer])),
        is_variable=bool(t.isVariable),
        scales=tuple(float(s) for s in q.scale) if q is not None and q.scale is not None else (),
        zero_points=tuple(int(z) for z in q.zeroPoint) if q is not None and q.zeroPoint is not None else (),
        is_sparse=t.sparsity is not None,
    )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@cache
def _options_type_names() -> dict[int, str]:
    return {v: k for k, v in vars(schema().BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}


def _options_type_name(number: int) -> str:
    return _options_type_names().get(int(number), f"unknown options type {number}")


def _options(table: Any) -> dict[str, Any]:
    """A builtin options object as a plain dict of scalars (lists become tuples)."""
    if table is None:
        return {}
    options = {}
    for key, value in vars(table).items():
        if isinstance(value, (bool, int, float)):
            options[_snake(key)] = value
        elif value is not None and hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
            options[_snake(key)] = tuple(int(v) for v in value)
    return options


def parse_tflite(blob: bytes, path: str = "<bytes>") -> TFLiteModel:
    """Parse and verify TFLite flatbuffer bytes.

    Example:
        >>> parse_tflite(b"garbage")
        Traceback (most recent call last):
        ...
        edgekit.errors.ModelFormatError: <bytes>: not a TFLite model (file is 7 bytes)
    """
    if len(blob) < 8 or blob[4:8] != TFLITE_IDENTIFIER:
        what = f"file is {len(blob)} bytes" if len(blob) < 8 else "no TFL3 identifier"
        raise ModelFormatError(f"{path}: not a TFLite model ({what})")
    s = schema()
    try:
        raw = s.ModelT.InitFromPackedBuf(blob, 0)
        codes, versions = [], []
        for oc in raw.operatorCodes or []:
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            custom = _decode(oc.customCode)
            codes.append(f"CUSTOM:{custom}" if custom or code == 32 else builtin_op_name(code))
            versions.append(int(oc.version or 1))
        buffers = [_buffer_data(b, blob) for b in raw.buffers or []]
        subgraphs = []
        for i, sg in enumerate(raw.subgraphs or []):
            tensors = [_tensor(t, buffers) for t in sg.tensors or []]
            ops = []
            for op in sg.operators or []:
                ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else ()))
                outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else ()))
                if any(x >= len(tensors) for x in ins + outs) or op.opcodeIndex >= len(codes):
                    raise ModelFormatError(f"{path}: operator refers to a missing tensor or opcode")
                code = op.opcodeIndex
                options_type = _options_type_name(op.builtinOptionsType) if op.builtinOptions is not None else ""
                ops.append(OpInfo(codes[code], ins, outs, _options(op.builtinOptions), versions[code], options_type))
            subgraphs.append(
                SubgraphInfo(
                    name=_decode(sg.name) or f"subgraph_{i}",
                    tensors=tensors,
                    ops=ops,
                    inputs=[int(x) for x in (sg.inputs if sg.inputs is not None else ())],
                    outputs=[int(x) for x in (sg.outputs if sg.outputs is not None else ())],
                )
            )
        metadata = {}
        for m in raw.metadata or []:
            if 0 <= m.buffer < len(buffers):
                metadata[_decode(m.name)] = buffers[m.buffer].tobytes()
        signatures, signature_tensors = {}, {}
        for sd in raw.signatureDefs or []:
            key = _decode(sd.signatureKey)
            signatures[key] = {
                "inputs": [_decode(t.name) for t in sd.inputs or []],
                "outputs": [_decode(t.name) for t in sd.outputs or []],
            }
            if sd.subgraphIndex == 0:
                signature_tensors[key] = {
                    int(t.tensorIndex): _decode(t.name) for t in [*(sd.inputs or []), *(sd.outputs or [])]
                }
    except ModelFormatError:
        raise
    except Exception as exc:  # any read past the end or garbled table lands here
        raise ModelFormatError(f"{path}: corrupt or truncated TFLite model ({type(exc).__name__})") from None
    if not subgraphs:
        raise ModelFormatError(f"{path}: TFLite model has no subgraphs")
    model = TFLiteModel(
        path=path,
        size_bytes=len(blob),
        version=int(raw.version),
        description=_decode(raw.description),
        subgraphs=subgraphs,
        buffers=buffers,
        metadata=metadata,
        signatures=signatures,
        signature_tensors=signature_tensors,
    )
    check_structure(model)
    return model


def read_tflite(path: str | Path) -> TFLiteModel:
    """Read and verify a ``.tflite`` file.

    Example:
        >>> read_tflite("missing.tflite")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.tflite: no such file
    """
    from edgekit.runtime.files import read_model_bytes

    return parse_tflite(read_model_bytes(path), str(path))


def name_io_in_order(blob: bytes, inputs: list[str], outputs: list[str]) -> bytes:
    """Put a converted model's inputs and outputs in the given (Keras) order, named as given.

    The TFLite converter orders the main subgraph's inputs and outputs as it
    likes (two outputs come out swapped) and names the tensors
    ``serving_default_x:0`` / ``StatefulPartitionedCall:1``; only its
    signature keeps the source's names. This rewrites the subgraph's input and
    output lists (what ``get_input_details()`` and Android's
    ``Interpreter.run`` index by) in that order, names those tensors after the
    signature entries, and orders the signature the same way. Tensor indices
    and the graph are unchanged.

    Example:
        >>> blob = name_io_in_order(blob, ["features", "tokens"], ["box", "cls"])  # doctest: +SKIP
    """
    import flatbuffers

    s = schema()
    model = s.ModelT.InitFromPackedBuf(blob, 0)
    signature = next((sd for sd in model.signatureDefs or [] if sd.subgraphIndex == 0), None)
    if signature is None:
        raise ModelFormatError("the converted model has no signature to name its inputs and outputs by")
    graph = model.subgraphs[0]
    for kind, want, entries in (("inputs", inputs, signature.inputs), ("outputs", outputs, signature.outputs)):
        by_name = {_decode(e.name): e for e in entries or []}
        if sorted(by_name) != sorted(want):
            raise ModelFormatError(f"signature {kind} are {sorted(by_name)}, expected {want}")
        ordered = [by_name[name] for name in want]
        setattr(signature, kind, ordered)
        setattr(graph, kind, [int(e.tensorIndex) for e in ordered])
        for e in ordered:
            graph.tensors[e.tensorIndex].name = e.name
    builder = flatbuffers.Builder(len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def ends_in_softmax(model: TFLiteModel, output_index: int) -> bool:
    """Whether an output is produced by SOFTMAX (possibly through a QUANTIZE/DEQUANTIZE/RESHAPE).

    Example:
        >>> ends_in_softmax(read_tflite("mobilenet_v2_1.0_224_quant.tflite"), 0)  # doctest: +SKIP
        True
    """
    graph = model.subgraphs[0]
    producers = {t: op for op in graph.ops for t in op.outputs}
    tensor = graph.outputs[output_index]
    for _ in range(4):
        op = producers.get(tensor)
        if op is None:
            return False
        if op.name == "SOFTMAX":
            return True
        if op.name not in ("QUANTIZE", "DEQUANTIZE", "RESHAPE") or not op.inputs:
            return False
        tensor = op.inputs[0]
    return False


DETECTION_POSTPROCESS = "CUSTOM:TFLite_Detection_PostProcess"
DETECTION_ROLES = ("boxes", "classes", "scores", "count")  # the post-processing op's four outputs, in order


def graph_output_kinds(model: TFLiteModel) -> dict[int, tuple[str, str, str | None]]:
    """What the graph itself says an output holds, by output index: ``(kind, why, role)``.

    A SOFTMAX makes probabilities; the TFLite detection post-processing op's four outputs are a detection's
    boxes, classes, scores and count; an ARG_MAX giving an integer map of the input's height and width is a
    segmentation's class ids. Other outputs are absent (the file does not say).

    Example:
        >>> graph_output_kinds(read_tflite("deeplabv3_mnv2_dm05_pascal_quant.tflite"))  # doctest: +SKIP
        {0: ('segmentation', 'ARG_MAX over the classes of a 513×513 map', 'class_ids')}
    """
    graph = model.subgraphs[0]
    producers = {t: op for op in graph.ops for t in op.outputs}
    image = graph.tensor(graph.inputs[0]).shape if graph.inputs else ()
    found: dict[int, tuple[str, str, str | None]] = {}
    for index, tensor in enumerate(graph.outputs):
        op = producers.get(tensor)
        shape = tuple(graph.tensor(tensor).shape)
        if op is not None and op.name == DETECTION_POSTPROCESS and tensor in op.outputs:
            role = DETECTION_ROLES[op.outputs.index(tensor)] if op.outputs.index(tensor) < 4 else None
            found[index] = ("detection", "the TFLite detection post-processing op produces it", role)
        elif (
            op is not None
            and op.name == "ARG_MAX"
            and len(shape) == 3
            and len(image) == 4
            and (tuple(shape[1:]) == tuple(image[1:3]))
        ):
            found[index] = ("segmentation", f"ARG_MAX over the classes of a {shape[1]}×{shape[2]} map", "class_ids")
        elif ends_in_softmax(model, index):
            found[index] = ("probabilities", "a SOFTMAX op produces it", None)
    return found

"""Read an ONNX model's structure with a small protobuf wire-format decoder.

The runtime lane has ONNX Runtime but not the ``onnx`` package; inspection only
needs the graph's nodes, initializers and value infos, which this module reads
straight from the protobuf wire format (field numbers from ``onnx.proto``).
Every length is bounds-checked, so garbage raises :class:`ModelFormatError`.

Example:
    >>> parse_onnx(b"\\x08\\x07", "x.onnx")
    Traceback (most recent call last):
    ...
    edgekit.errors.ModelFormatError: x.onnx: not an ONNX model (no graph)
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import ModelFormatError
from edgekit.formats.onnx_checks import check_onnx_structure

ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    16: "bfloat16", 17: "float8e4m3fn", 19: "float8e5m2", 21: "uint4", 22: "int4",
}  # fmt: skip


class _WireError(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one message into (field number, value) pairs; value is an int or raw bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise _WireError("truncated fixed field")
            value, pos = buf[pos : pos + width], pos + width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _WireError("length past end of message")
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise _WireError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


def _ints(values: list[int | bytes]) -> list[int]:
    """Repeated int64 field: plain varints or packed blobs."""
    out: list[int] = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        else:
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                out.append(x)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in out]


def _group(fields: list[tuple[int, int | bytes]]) -> dict[int, list[int | bytes]]:
    grouped: dict[int, list[int | bytes]] = collections.defaultdict(list)
    for number, value in fields:
        grouped[number].append(value)
    return grouped


def _text(values: list[int | bytes]) -> str:
    return values[-1].decode("utf-8", "replace") if values and isinstance(values[-1], bytes) else ""


@dataclass(frozen=True)
class ValueInfo:
    """A graph input/output: name, element type and dims (str for symbolic, None for unknown)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


@dataclass(frozen=True)
class NodeInfo:
    """One node: ``op_type`` prefixed with its domain unless it is the default domain."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class OnnxModel:
    """A parsed ONNX model."""

    path: str
    size_bytes: int
    ir_version: int
    producer: str
    opsets: dict[str, int]
    nodes: list[NodeInfo]
    initializers: dict[str, tuple[str, tuple[int, ...]]]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    value_shapes: dict[str, tuple[int | str | None, ...]] = field(default_factory=dict)
    value_dtypes: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def op_histogram(self) -> dict[str, int]:
        """Node op → count over the main graph and its subgraphs, most frequent first."""
        return dict(collections.Counter(n.op for n in self.nodes).most_common())


def _value_info(buf: bytes) -> ValueInfo:
    vi = _group(_fields(buf))
    dtype, dims = "unknown", []
    for type_proto in vi.get(2, []):
        tensor = _group(_fields(type_proto)).get(1, [])  # TypeProto.tensor_type
        for tt in tensor:
            t = _group(_fields(tt))
            dtype = ONNX_DTYPES.get(t[1][-1], "unknown") if t.get(1) else "unknown"
            for shape in t.get(2, []):
                for dim in _group(_fields(shape)).get(1, []):
                    d = _group(_fields(dim))
                    dims.append(d[1][-1] if d.get(1) else (_text(d[2]) if d.get(2) else None))
    return ValueInfo(_text(vi.get(1, [])), dtype, tuple(dims))


def _walk_graph(buf: bytes, model: OnnxModel, top: bool) -> None:
    g = _group(_fields(buf))
    for node_buf in g.get(1, []):
        n = _group(_fields(node_buf))
        domain = _text(n.get(7, []))
        op = _text(n.get(4, []))
        if not op:
            raise _WireError("node without op_type")
        name = op if domain in ("", "ai.onnx") else f"{domain}:{op}"
        model.nodes.append(
            NodeInfo(
                name,
                tuple(v.decode() for v in n.get(1, []) if isinstance(v, bytes)),
                tuple(v.decode() for v in n.get(2, []) if isinstance(v, bytes)),
            )
        )
        for attr_buf in n.get(5, []):  # AttributeProto: g = 6, graphs = 11
            a = _group(_fields(attr_buf))
            for sub in a.get(6, []) + a.get(11, []):
                _walk_graph(sub, model, top=False)
    for init_buf in g.get(5, []):
        t = _group(_fields(init_buf))
        dims = tuple(_ints(t.get(1, [])))
        dtype = ONNX_DTYPES.get(t[2][-1], "unknown") if t.get(2) else "unknown"
        model.initializers[_text(t.get(8, []))] = (dtype, dims)
    for vi_buf in g.get(13, []):
        vi = _value_info(vi_buf)
        model.value_shapes[vi.name] = vi.shape
        model.value_dtypes[vi.name] = vi.dtype
    if top:
        init_names = set(model.initializers)
        model.inputs = [v for v in map(_value_info, g.get(11, [])) if v.name not in init_names]
        model.outputs = [_value_info(b) for b in g.get(12, [])]
        for v in model.inputs + model.outputs:
            model.value_shapes[v.name] = v.shape
            model.value_dtypes[v.name] = v.dtype


def parse_onnx(blob: bytes, path: str = "<bytes>") -> OnnxModel:
    """Parse ONNX ``ModelProto`` bytes.

    Example:
        >>> parse_onnx(b"\\xff\\xff", "bad.onnx")
        Traceback (most recent call last):
        ...
        edgekit.errors.ModelFormatError: bad.onnx: not an ONNX model (truncated varint)
    """
    try:
        m = _group(_fields(blob))
        if not m.get(7):
            raise _WireError("no graph")
        opsets = {}
        for ops in m.get(8, []):
            o = _group(_fields(ops))
            opsets[_text(o.get(1, [])) or "ai.onnx"] = int(o[2][-1]) if o.get(2) else 0
        metadata = {}
        for kv in m.get(14, []):
            e = _group(_fields(kv))
            metadata[_text(e.get(1, []))] = _text(e.get(2, []))
        producer = " ".join(x for x in (_text(m.get(2, [])), _text(m.get(3, []))) if x)
        model = OnnxModel(
            path=path,
            size_bytes=len(blob),
            ir_version=int(m[1][-1]) if m.get(1) and isinstance(m[1][-1], int) else 0,
            producer=producer,
            opsets=opsets,
            nodes=[],
            initializers={},
            inputs=[],
            outputs=[],
            metadata=metadata,
        )
        _walk_graph(m[7][-1], model, top=True)
    except (_WireError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ModelFormatError(f"{path}: not an ONNX model ({exc})") from None
    if model.ir_version <= 0 or not model.nodes:
        raise ModelFormatError(f"{path}: not an ONNX model (no IR version or no nodes)")
    check_onnx_structure(model)
    return model


def read_onnx(path: str | Path) -> OnnxModel:
    """Read and parse an ``.onnx`` file.

    Example:
        >>> read_onnx("missing.onnx")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.onnx: no such file
    """
    from edgekit.runtime.files import read_model_bytes

    return parse_onnx(read_model_bytes(path), str(path))


def num_elements(dims: tuple[int, ...]) -> int:
    """Element count of a shape (an empty shape is a scalar: 1).

    Example:
        >>> num_elements((3, 4))
        12
    """
    return int(np.prod(dims, dtype=np.int64)) if dims else 1

"""Mutators for the fuzz harness: TFLite flatbuffers, ONNX protobufs, bundles and input files.

Each mutator takes a seeded ``random.Random`` and returns one :class:`Case`: the files to write into the
case's folder and the ``edgekit`` command line to run on them. Mutations are of two kinds: structural
(a field of the parsed model or manifest set to a hostile value, the file re-serialized, so it parses)
and raw (bits flipped, bytes overwritten, the file truncated).

Example:
    >>> seeds = Seeds.build(Path("/tmp/fuzz-seeds"))  # doctest: +SKIP
    >>> tflite_case(random.Random(0), seeds).argv[0]  # doctest: +SKIP
    'inspect'
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SHARED_CORAL = "coral"
CANARY = "EDGEKIT-FUZZ-CANARY-3141"  # the content of a file outside every bundle: it must never be printed
INTS = [-(2**31), -(2**15), -7, -2, -1, 0, 1, 2, 3, 7, 255, 256, 4096, 65535, 2**20, 2**24, 2**31 - 1, 2**40]
FLOATS = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e-45, 1e-12, 1.0, 1e12, 3.4e38]


@dataclass
class Case:
    """One fuzz case: ``files`` (name → bytes, or a folder's files under ``name/``) and the command to run."""

    target: str
    mutation: str
    files: dict[str, bytes]
    argv: list[str]
    tampered_with_key: bool = False  # a signed bundle changed and the key given: exit 0 would accept tampering
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Seeds:
    """The unmutated files every case starts from (models, bundles, inputs), built once per run."""

    tflite: dict[str, bytes]
    tflite_inputs: dict[str, bytes]  # .npy input of each seed model's first input
    onnx: dict[str, bytes]
    onnx_inputs: dict[str, bytes]
    bundles: dict[str, dict[str, bytes]]  # name → file → bytes (signed)
    bundle_inputs: dict[str, dict[str, bytes]]  # bundle name → input file name → bytes
    public_key: bytes

    @classmethod
    def build(cls, shared: Path, work: Path) -> Seeds:
        """Seed models from ``shared/coral`` (small ones), ONNX models built with ``onnx.helper``, and a signed
        Pi bundle of each of two Coral models (an image classifier, an LSTM)."""
        from edgekit.runtime.probe_model import tiny_add_model
        from edgekit.stages.bundle import bundle
        from edgekit.stages.bundle.signing import write_keypair

        coral = shared / SHARED_CORAL
        tflite = {
            "add.tflite": tiny_add_model(),
            "lstm.tflite": (coral / "keras_lstm_mnist_ptq.tflite").read_bytes(),
            "mobilenet.tflite": (coral / "mobilenet_v1_0.25_128_quant.tflite").read_bytes(),
        }
        tflite_inputs = {name: _npy(_input_of_tflite(blob)) for name, blob in tflite.items()}
        onnx_models = _onnx_seeds()
        onnx_inputs = {name: _npy(_input_of_onnx(blob)) for name, blob in onnx_models.items()}
        private, public = write_keypair(work / "key")
        bundles, inputs = {}, {}
        for name, model, labels in (("classifier", "mobilenet_v1_0.25_128_quant.tflite", "imagenet_labels.txt"),
                                    ("lstm", "keras_lstm_mnist_ptq.tflite", None)):  # fmt: skip
            out = work / f"bundle-{name}"
            bundle(coral / model, "rpi", labels=coral / labels if labels else None, out=out, sign=private)
            bundles[name] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                             if p.is_file()}  # fmt: skip
        inputs["classifier"] = {"cat.bmp": (coral / "images" / "cat.bmp").read_bytes(),
                                "cat.png": _png(coral / "images" / "cat.bmp")}  # fmt: skip
        lstm_in = np.random.default_rng(0).uniform(0, 1, (1, 28, 28)).astype(np.float32)
        inputs["lstm"] = {"window.npy": _npy(lstm_in), "window.csv": _csv(lstm_in[0])}
        return cls(tflite, tflite_inputs, onnx_models, onnx_inputs, bundles, inputs, public.read_bytes())


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(f"{v:.5f}" for v in row) for row in rows).encode() + b"\n"


def _png(path: Path) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as image:
        image.save(buf, "PNG")
    return buf.getvalue()


def _input_of_tflite(blob: bytes) -> np.ndarray:
    from edgekit.formats.tflite import parse_tflite

    model = parse_tflite(blob, "seed.tflite")
    tensor = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]]
    shape = [max(d, 1) for d in tensor.shape]
    return np.random.default_rng(0).integers(0, 100, shape).astype(tensor.dtype)


def _input_of_onnx(blob: bytes) -> np.ndarray:
    import onnx

    value = onnx.load_from_string(blob).graph.input[0]
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    return np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)


def _onnx_seeds() -> dict[str, bytes]:
    """Three small ONNX models: an MLP, a convolution net, and the MLP quantized dynamically by ONNX Runtime."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    mlp = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
         helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])],
        [init("w1", 16, 32), init("b1", 32), init("w2", 32, 4)],
    )  # fmt: skip
    conv = helper.make_graph(
        [helper.make_node("Conv", ["img", "k", "kb"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Relu", ["c"], ["cr"]), helper.make_node("MaxPool", ["cr"], ["p"], kernel_shape=[2, 2]),
         helper.make_node("GlobalAveragePool", ["p"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
         helper.make_node("Gemm", ["f", "wd", "bd"], ["out"])],
        "conv", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5])],
        [init("k", 8, 3, 3, 3), init("kb", 8), init("wd", 8, 5), init("bd", 5)],
    )  # fmt: skip
    models = {}
    for graph in (mlp, conv):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        models[f"{graph.name}.onnx"] = model.SerializeToString()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(__import__("tempfile").mkdtemp(prefix="edgekit-fuzz-onnx-"))
    (folder / "mlp.onnx").write_bytes(models["mlp.onnx"])
    quantize_dynamic(folder / "mlp.onnx", folder / "mlp_int8.onnx", weight_type=QuantType.QInt8)
    models["mlp_int8.onnx"] = (folder / "mlp_int8.onnx").read_bytes()
    shutil.rmtree(folder, ignore_errors=True)
    return models


# -- raw bytes -------------------------------------------------------------------------------


def raw_mutation(rng: random.Random, blob: bytes) -> tuple[str, bytes]:
    """Bits flipped, a run of bytes overwritten with hostile values, the file truncated or a chunk duplicated."""
    data = bytearray(blob)
    kind = rng.choice(["bitflip", "overwrite", "truncate", "duplicate", "int32"])
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        i = rng.randrange(len(data))
        data[i : i + rng.randint(1, 16)] = bytes(
            rng.choice([0x00, 0xFF, 0x7F, 0x80]) for _ in range(rng.randint(1, 16))
        )
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "duplicate":
        i = rng.randrange(len(data))
        data[i:i] = data[i : i + rng.randint(1, 256)]
    else:  # an aligned 32-bit field (an offset, a length, a dimension) set to a hostile value
        i = rng.randrange(max(len(data) // 4, 1)) * 4
        data[i : i + 4] = struct.pack("<i", rng.choice(INTS[:-1]))
    return f"raw:{kind}", bytes(data)


# -- TFLite ----------------------------------------------------------------------------------


def _tflite_structural(rng: random.Random, blob: bytes) -> tuple[str, bytes]:
    import flatbuffers

    from edgekit.formats.tflite import TFLITE_IDENTIFIER, schema

    s = schema()
    model = s.ModelT.InitFromPackedBuf(blob, 0)
    graph = model.subgraphs[0]
    tensors, ops = graph.tensors, graph.operators or []
    n = len(tensors)
    tensor = rng.choice(tensors)
    op = rng.choice(ops) if ops else None
    kind = rng.choice(["op_input", "op_output", "op_inputs_cut", "shape", "shape_rank", "type", "tensor_buffer",
                       "buffer_data", "scale", "zero_point", "quant_dim", "graph_io", "opcode_index", "builtin_code",
                       "option", "variable", "op_order", "signature"])  # fmt: skip
    if kind in ("op_input", "op_output", "op_inputs_cut") and op is not None:
        attr = "outputs" if kind == "op_output" else "inputs"
        values = list(getattr(op, attr) if getattr(op, attr) is not None else [])
        if kind == "op_inputs_cut":
            values = values[: rng.randrange(len(values) + 1)]
        elif values:
            values[rng.randrange(len(values))] = rng.choice([-2, -1, n, n + 5, 2**31 - 1, rng.randrange(n)])
        setattr(op, attr, values)
    elif kind == "shape":
        shape = list(tensor.shape if tensor.shape is not None else [])
        if shape:
            shape[rng.randrange(len(shape))] = rng.choice(INTS[:-1])
        tensor.shape = shape
    elif kind == "shape_rank":
        shape = list(tensor.shape if tensor.shape is not None else [])
        tensor.shape = shape[:-1] if shape and rng.random() < 0.5 else [*shape, rng.choice([1, 2, 3, 1000])]
    elif kind == "type":
        tensor.type = rng.randrange(0, 20)
    elif kind == "tensor_buffer":
        tensor.buffer = rng.choice([0, len(model.buffers) - 1, len(model.buffers), rng.randrange(len(model.buffers))])
    elif kind == "buffer_data":
        full = [b for b in model.buffers if b.data is not None and len(b.data)] or model.buffers
        buf = rng.choice(full)
        data = bytes(buf.data) if buf.data is not None else b""
        buf.data = rng.choice([None, data[: len(data) // 2], data + bytes(rng.randint(1, 64))])
    elif kind in ("scale", "zero_point", "quant_dim"):
        q = tensor.quantization or s.QuantizationParametersT()
        tensor.quantization = q
        if kind == "scale":
            q.scale = [rng.choice(FLOATS) for _ in range(rng.choice([1, 1, 2, 1000]))]
        elif kind == "zero_point":
            q.zeroPoint = [rng.choice(INTS) for _ in range(rng.choice([1, 1, 2, 1000]))]
        else:
            q.quantizedDimension = rng.choice(INTS[:-1])
    elif kind == "graph_io":
        attr = rng.choice(["inputs", "outputs"])
        values = list(getattr(graph, attr))
        values[rng.randrange(len(values))] = rng.choice([-1, n, 2**31 - 1, rng.randrange(n)])
        setattr(graph, attr, values)
    elif kind == "opcode_index" and op is not None:
        op.opcodeIndex = rng.choice([len(model.operatorCodes), 2**31 - 1, rng.randrange(len(model.operatorCodes))])
    elif kind == "builtin_code":
        code = rng.choice(model.operatorCodes)
        code.builtinCode = code.deprecatedBuiltinCode = rng.randrange(0, 127)
    elif kind == "option" and op is not None and op.builtinOptions is not None:
        names = [
            k for k, v in vars(op.builtinOptions).items() if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if names:
            setattr(op.builtinOptions, rng.choice(names), rng.choice([0, -1, 2**31 - 1, 1000, 7]))
    elif kind == "variable":
        tensor.isVariable = not tensor.isVariable
    elif kind == "op_order" and ops:
        rng.shuffle(ops)
    elif kind == "signature":
        tensor.shapeSignature = [rng.choice(INTS[:-1]) for _ in range(rng.randint(0, 5))]
    builder = flatbuffers.Builder(len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return f"tflite:{kind}", bytes(builder.Output())


def tflite_case(rng: random.Random, seeds: Seeds) -> Case:
    """A mutated TFLite model under ``inspect``, ``bench`` or ``predict``."""
    name = rng.choice(sorted(seeds.tflite))
    blob = seeds.tflite[name]
    try:
        mutation, data = _tflite_structural(rng, blob) if rng.random() < 0.7 else raw_mutation(rng, blob)
    except (TypeError, struct.error, OverflowError):  # a value the field's type cannot hold: mutate the bytes
        mutation, data = raw_mutation(rng, blob)
    command = rng.choice(["inspect", "bench", "bench", "predict"])
    files = {"model.tflite": data}
    if command == "predict":
        files["input.npy"] = seeds.tflite_inputs[name]
        argv = ["predict", "model.tflite", "input.npy", "--json"]
    elif command == "bench":
        argv = ["bench", "model.tflite", "--runs", "2", "--warmup", "0"]
    else:
        argv = ["inspect", "model.tflite"]
    return Case("tflite", f"{name}:{mutation}", files, argv)


# -- ONNX ------------------------------------------------------------------------------------


def _onnx_structural(rng: random.Random, blob: bytes) -> tuple[str, bytes]:
    import onnx

    model = onnx.load_from_string(blob)
    graph = model.graph
    node = rng.choice(graph.node)
    kind = rng.choice(["node_input", "node_output", "op_type", "attribute", "init_dims", "init_data", "init_type",
                       "input_dim", "input_type", "opset", "drop_node", "ir_version", "duplicate_output"])  # fmt: skip
    names = [v for n in graph.node for v in n.output] + [i.name for i in graph.initializer] + ["", "nowhere"]
    if kind == "node_input" and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(names)
    elif kind == "node_output" and node.output:
        node.output[rng.randrange(len(node.output))] = rng.choice(names)
    elif kind == "op_type":
        node.op_type = rng.choice(OP_TYPES)
    elif kind == "attribute" and node.attribute:
        a = rng.choice(node.attribute)
        if a.ints:
            a.ints[rng.randrange(len(a.ints))] = rng.choice(INTS[:-1])
        else:
            a.i, a.f = rng.choice(INTS[:-1]), rng.choice(FLOATS)
    elif kind.startswith("init") and graph.initializer:
        t = rng.choice(graph.initializer)
        if kind == "init_dims" and t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(INTS[:-1])
        elif kind == "init_data":
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)] if t.raw_data else b"\x00" * 3
        else:
            t.data_type = rng.randrange(0, 24)
    elif kind in ("input_dim", "input_type"):
        value = rng.choice(graph.input)
        if kind == "input_type":
            value.type.tensor_type.elem_type = rng.randrange(0, 24)
        elif value.type.tensor_type.shape.dim:
            dims = value.type.tensor_type.shape.dim
            dims[rng.randrange(len(dims))].dim_value = rng.choice(INTS[:-1])
    elif kind == "opset":
        model.opset_import[0].version = rng.choice([1, 6, 11, 25, 999, 2**31 - 1])
    elif kind == "drop_node" and len(graph.node) > 1:
        graph.node.remove(node)
    elif kind == "ir_version":
        model.ir_version = rng.choice([0, 1, 3, 11, 99])
    elif kind == "duplicate_output" and node.output:
        graph.node.add().CopyFrom(node)
    return f"onnx:{kind}", model.SerializeToString()


OP_TYPES = ["Conv", "Gemm", "Reshape", "Gather", "Slice", "Resize", "Expand", "Tile", "NoSuchOp", "LSTM", "TopK",
            "Softmax", "QLinearMatMul", "MatMulInteger", "If", "Loop"]  # fmt: skip


def onnx_case(rng: random.Random, seeds: Seeds) -> Case:
    """A mutated ONNX model under ``inspect`` or ``bench``."""
    name = rng.choice(sorted(seeds.onnx))
    blob = seeds.onnx[name]
    try:
        mutation, data = _onnx_structural(rng, blob) if rng.random() < 0.7 else raw_mutation(rng, blob)
    except (TypeError, ValueError):  # a value the field's type cannot hold: mutate the bytes
        mutation, data = raw_mutation(rng, blob)
    command = rng.choice(["inspect", "bench", "bench"])
    argv = (
        ["inspect", "model.onnx"] if command == "inspect" else ["bench", "model.onnx", "--runs", "2", "--warmup", "0"]
    )
    return Case("onnx", f"{name}:{mutation}", {"model.onnx": data}, argv)


# -- bundles ---------------------------------------------------------------------------------

HOSTILE_VALUES: list[Any] = [
    None, -1, 0, 1, 2**31, 1e308, float("nan"), "", "../secret.txt", "../../secret.txt", "/etc/passwd",
    "secret_link", "a/../../secret.txt", "a" * 300, [], {}, [0] * 5000, [100_000, 100_000], "/dev/zero", True,
    "uint8", "float64", "image", "window", "classifier", "anomaly_scorer",
]  # fmt: skip


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (keys and indices)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list) and len(value) <= 16:
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _manifest_mutation(rng: random.Random, manifest: dict[str, Any]) -> str:
    path = rng.choice(_paths(manifest)[1:])
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
        return "manifest:delete:" + "/".join(map(str, path))
    parent[path[-1]] = rng.choice(HOSTILE_VALUES)
    return "manifest:set:" + "/".join(map(str, path))


def _rehash(files: dict[str, bytes], manifest: dict[str, Any]) -> None:
    listed = manifest.get("files")
    if isinstance(listed, dict):
        for name in list(listed):
            if isinstance(name, str) and name in files:
                listed[name] = hashlib.sha256(files[name]).hexdigest()


def _zip(files: dict[str, bytes], rng: random.Random) -> tuple[str, bytes]:
    buf = io.BytesIO()
    kind = rng.choice(["plain", "duplicate", "extra", "traversal", "many", "bomb", "symlink"])
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": the point of the case
        for name, data in files.items():
            zf.writestr(name, data)
        if kind == "duplicate":
            name = rng.choice(sorted(files))
            zf.writestr(name, files[name][::-1] or b"x")
        elif kind == "extra":
            zf.writestr("extra.bin", b"\x00" * 10)
        elif kind == "traversal":
            zf.writestr(rng.choice(["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"]), b"evil")
        elif kind == "many":
            for i in range(rng.choice([1001, 3000])):
                zf.writestr(f"e/{i}", b"")
        elif kind == "bomb":
            zf.writestr("bomb.bin", b"\x00" * (rng.choice([2, 64]) << 20))
        elif kind == "symlink":
            info = zipfile.ZipInfo("link")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return f"zip:{kind}", buf.getvalue()


def bundle_case(rng: random.Random, seeds: Seeds) -> Case:
    """A signed bundle with its manifest, files or archive mutated, under ``verify`` or ``predict``, with the
    public key half the time."""
    name = rng.choice(sorted(seeds.bundles))
    base = seeds.bundles[name]
    files = dict(base)
    manifest = json.loads(files["edgekit.json"])
    kind = rng.choice(["manifest", "manifest", "manifest", "file", "labels_path"])
    if kind == "manifest":
        mutation = _manifest_mutation(rng, manifest)
    elif kind == "file":
        target = rng.choice(sorted(files))
        mutation = f"file:{target}:" + raw_mutation(rng, files[target] or b"\x00")[0]
        files[target] = raw_mutation(rng, files[target] or b"\x00")[1]
    else:
        manifest.setdefault("postprocessing", {})["labels"] = rng.choice(["../secret.txt", "../../secret.txt",
                                                                           "secret_link", "/dev/zero"])  # fmt: skip
        mutation = "labels_path"
    if rng.random() < 0.6:
        _rehash(files, manifest)  # as an attacker would
        mutation += "+rehashed"
    files["edgekit.json"] = json.dumps(manifest, allow_nan=True).encode()
    tampered = any(files.get(k) != v for k, v in base.items())
    with_key = rng.random() < 0.5
    inputs = seeds.bundle_inputs[name]
    given = rng.choice(sorted(inputs))
    case_files = {f"bundle/{k}": v for k, v in files.items()}
    case_files["secret.txt"] = CANARY.encode()
    case_files[given] = inputs[given]
    case_files["key.pub"] = seeds.public_key
    source = "bundle"
    if rng.random() < 0.3:
        zip_kind, data = _zip(files, rng)
        mutation += f"+{zip_kind}"
        case_files = {k: v for k, v in case_files.items() if not k.startswith("bundle/")}
        case_files["bundle.zip"] = data
        source = "bundle.zip"
        tampered = tampered or zip_kind in ("duplicate", "extra", "traversal", "many", "bomb", "symlink")
    command = rng.choice(["verify", "predict"])
    argv = [command, source, *([given, "--json"] if command == "predict" else ["--json"])]
    if with_key:
        argv += ["--key", "key.pub"]
    return Case("bundle", f"{name}:{mutation}", case_files, argv, tampered_with_key=with_key and tampered,
                meta={"symlink": "secret_link"})  # fmt: skip


# -- inputs ----------------------------------------------------------------------------------


def _image_mutation(rng: random.Random, data: bytes, suffix: str) -> tuple[str, bytes]:
    """The width / height in the header set to hostile values (PNG's CRC fixed so the header parses)."""
    out = bytearray(data)
    if suffix == ".png" and rng.random() < 0.7:
        width, height = rng.choice([(13_000, 13_000), (30_000, 30_000), (0, 1), (2**31 - 1, 1), (1, 1), (9000, 1)])
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
        return f"png_header:{width}x{height}", bytes(out)
    if suffix == ".bmp" and rng.random() < 0.7:
        width, height = rng.choice([(13_000, 13_000), (-5, 10), (0, 0), (2**31 - 1, 1), (100_000, 100_000)])
        out[18:26] = struct.pack("<ii", width, height)
        return f"bmp_header:{width}x{height}", bytes(out)
    return raw_mutation(rng, data)


def _npy_mutation(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["header", "values", "shape", "raw"])
    if kind == "values":
        array = np.load(io.BytesIO(data)).astype(np.float32)
        array.flat[rng.randrange(array.size)] = rng.choice(FLOATS)
        return "npy:values", _npy(array)
    if kind == "shape":
        shape = rng.choice([(0, 28, 28), (1, 28), (100_000, 28, 28), (1, 28, 28, 1), ()])
        dtype = rng.choice(["float32", "int64", "U3", "complex64", "bool"])
        return f"npy:shape:{shape}:{dtype}", _npy(np.zeros(shape, dtype)) if np.prod(shape) < 1e6 else _header(shape)
    if kind == "header":
        return "npy:header", _header(
            rng.choice([(2**40,), (1, -1), "x", (1, 28, 28)]), rng.choice(["<f4", "|O", "<V8"])
        )
    return raw_mutation(rng, data)


def _header(shape: Any, descr: str = "<f4") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64


def _csv_mutation(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["nan", "ragged", "latin1", "text", "long", "wide", "raw"])
    rows = data.decode().splitlines()
    if kind == "nan":
        rows[rng.randrange(len(rows))] = ",".join(["nan"] * 28)
    elif kind == "ragged":
        rows[rng.randrange(len(rows))] += ",1"
    elif kind == "latin1":
        return "csv:latin1", "temp\xe9rature\n".encode("latin-1") + data
    elif kind == "text":
        rows.insert(rng.randrange(1, len(rows)), "a,b,c")
    elif kind == "long":
        rows = rows * 4000  # 112,000 rows: over the csv_rows limit
    elif kind == "wide":
        rows = [",".join(["1"] * 100_000)]
    else:
        return raw_mutation(rng, data)
    return f"csv:{kind}", ("\n".join(rows) + "\n").encode()


def input_case(rng: random.Random, seeds: Seeds) -> Case:
    """A valid signed bundle given a mutated input file (image, ``.npy`` or ``.csv``) under ``predict``."""
    name = rng.choice(sorted(seeds.bundle_inputs))
    inputs = seeds.bundle_inputs[name]
    given = rng.choice(sorted(inputs))
    suffix = Path(given).suffix
    if suffix in (".png", ".bmp"):
        mutation, data = _image_mutation(rng, inputs[given], suffix)
    elif suffix == ".npy":
        mutation, data = _npy_mutation(rng, inputs[given])
    else:
        mutation, data = _csv_mutation(rng, inputs[given])
    files = {f"bundle/{k}": v for k, v in seeds.bundles[name].items()}
    files[given] = data
    return Case("input", f"{name}:{mutation}", files, ["predict", "bundle", given, "--json"])


MUTATORS = {"tflite": tflite_case, "onnx": onnx_case, "bundle": bundle_case, "input": input_case}

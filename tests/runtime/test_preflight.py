"""Pre-flight for the Edge TPU and the GPU, and memory, checked against what real compilers and runtimes did.

Ground truth: Coral's CPU models beside their ``*_edgetpu.tflite`` twins (what ``edgetpu_compiler`` really left
on the CPU), LiteRT's own arena (where the interpreter really put each tensor), and recorded compiler output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.formats.tflite import EDGETPU_CUSTOM_OP, read_tflite
from edgekit.inspection import inspect_model
from edgekit.preflight.edgetpu import edgetpu_preflight
from edgekit.preflight.gpu import gpu_preflight
from edgekit.preflight.memory import arena_peak, measured_arena_span, model_memory, parse_bytes
from edgekit.stages.convert.compiler import parse_compiler_log
from tests.helpers import run_cli

PAIRS = [
    "mobilenet_v1_0.25_128_quant",
    "keras_lstm_mnist_ptq",
    "deeplabv3_mnv2_dm05_pascal_quant",
    "posenet_mobilenet_v1_075_353_481_16_quant_decoder",
]


@pytest.mark.parametrize("name", PAIRS)
def test_edgetpu_preflight_predicts_what_the_compiler_left_on_the_cpu(coral, name):
    cpu_model = read_tflite(coral / f"{name}.tflite")
    compiled = read_tflite(coral / f"{name}_edgetpu.tflite").subgraphs[0]
    predicted = edgetpu_preflight(cpu_model)
    left = [op.name for op in compiled.ops if op.name != f"CUSTOM:{EDGETPU_CUSTOM_OP}"]
    assert predicted["cpu_ops"] == left  # same ops, same order
    assert predicted["ops_cpu"] == len(left)
    assert predicted["ops_mapped"] + predicted["ops_cpu"] == len(cpu_model.subgraphs[0].ops)
    # The tensors the predicted TPU segment hands to the CPU part are the compiled custom op's outputs.
    graph = cpu_model.subgraphs[0]
    cpu_index = {r["index"] for r in predicted["reasons"]}
    mapped_out = {t for i, op in enumerate(graph.ops) if i not in cpu_index for t in op.outputs}
    crossing = {t for i in cpu_index for t in graph.ops[i].inputs if t in mapped_out}
    crossing |= {t for t in graph.outputs if t in mapped_out}
    custom = next(op for op in compiled.ops if op.name == f"CUSTOM:{EDGETPU_CUSTOM_OP}")
    assert len(crossing) == len(custom.outputs)


def test_edgetpu_preflight_says_why_deeplab_leaves_the_tpu(coral):
    tpu = edgetpu_preflight(read_tflite(coral / "deeplabv3_mnv2_dm05_pascal_quant.tflite"))
    first = tpu["reasons"][0]
    assert tpu["first_cpu_op_index"] == first["index"] == 64 and first["op"] == "RESIZE_BILINEAR"
    assert "1 -> 33" in first["reason"] and "align_corners" in first["reason"]
    assert all("only one segment" in r["reason"] for r in tpu["reasons"][1:-1])  # supported, but after the cut
    assert tpu["reasons"][-1]["reason"] == "ARG_MAX is not supported by the Edge TPU"
    # parameters of the 64 mapped ops fit the ~8 MB on-chip memory; nothing is streamed
    assert (
        0
        < tpu["param_bytes_on_chip"]
        < model_memory(read_tflite(coral / "deeplabv3_mnv2_dm05_pascal_quant.tflite"))["param_bytes"]
    )
    assert tpu["param_bytes_off_chip"] == 0


def test_a_leading_cast_stays_on_the_cpu_in_front_of_the_segment(coral, tmp_path):
    """Issue 22: a model whose first op converts its input's type (a float input CAST to uint8 before MobileNet v1)
    keeps the rest on the Edge TPU, as the compiler does; the CAST alone runs on the CPU, in front."""
    import flatbuffers

    from edgekit.formats.tflite import TFLITE_IDENTIFIER, parse_tflite, schema

    s = schema()
    blob = (coral / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    model = s.ModelT.InitFromPackedBuf(blob, 0)
    graph = model.subgraphs[0]
    raw = s.TensorT()
    raw.name, raw.shape, raw.type, raw.buffer = (
        b"raw",
        list(graph.tensors[graph.inputs[0]].shape),
        s.TensorType.FLOAT32,
        0,
    )
    graph.tensors.append(raw)
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CAST
    model.operatorCodes.append(code)
    cast = s.OperatorT()
    cast.opcodeIndex, cast.inputs, cast.outputs = (
        len(model.operatorCodes) - 1,
        [len(graph.tensors) - 1],
        [graph.inputs[0]],
    )
    graph.operators.insert(0, cast)
    graph.inputs = [len(graph.tensors) - 1]
    builder = flatbuffers.Builder(len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    casted = edgetpu_preflight(parse_tflite(bytes(builder.Output()), "cast.tflite"))
    plain = edgetpu_preflight(read_tflite(coral / "mobilenet_v1_0.25_128_quant.tflite"))
    assert casted["cpu_ops"] == ["CAST"] and casted["ops_mapped"] == plain["ops_mapped"] > 25
    assert "converts an input's type" in casted["reasons"][0]["reason"]


def test_inspect_cli_edgetpu_json(coral):
    r = run_cli("inspect", str(coral / "posenet_mobilenet_v1_075_353_481_16_quant_decoder.tflite"),
                "--target", "edgetpu", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    tpu = json.loads(r.stdout)["edgetpu"]
    assert {"ops_mapped", "ops_cpu", "cpu_ops", "first_cpu_op_index", "reasons", "param_bytes_on_chip",
            "param_bytes_off_chip"} <= set(tpu)  # fmt: skip
    assert tpu["cpu_ops"] == ["CUSTOM:PosenetDecoderOp"] and tpu["first_cpu_op_index"] == 37
    assert tpu["reasons"][0]["reason"] == "PosenetDecoderOp is not supported by the Edge TPU"


def test_compiled_model_is_read_not_predicted(coral):
    tpu = inspect_model(coral / "deeplabv3_mnv2_dm05_pascal_quant_edgetpu.tflite")["edgetpu"]
    assert tpu["compiled"] is True and tpu["ops_cpu"] == 8 and tpu["cpu_ops"][-1] == "ARG_MAX"


# -- memory ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["mobilenet_v2_1.0_224_quant", "deeplabv3_mnv2_dm05_pascal_quant", "keras_lstm_mnist_ptq"]
)
def test_activation_peak_is_where_litert_puts_the_tensors(coral, name):
    """Planned as TFLite's arena planner does, the peak equals the interpreter's real arena span, byte for byte
    (these models' kernels ask for no scratch tensors)."""
    path = coral / f"{name}.tflite"
    assert arena_peak(read_tflite(path).subgraphs[0]) == measured_arena_span(path)


def test_activation_peak_leaves_out_kernel_scratch_only(coral):
    """MobileNet v1's first uint8 conv takes an im2col scratch tensor (64·64·27 B) that no graph tensor shows:
    the real arena is larger than the plan by at most that."""
    path = coral / "mobilenet_v1_0.25_128_quant.tflite"
    planned = arena_peak(read_tflite(path).subgraphs[0])
    assert planned < measured_arena_span(path) <= planned + 64 * 64 * 27


def test_memory_in_every_inspect_and_ram_budget(coral, tmp_path):
    model = coral / "mobilenet_v1_0.25_128_quant.tflite"
    report = inspect_model(model)
    memory = report["memory"]
    assert memory["param_bytes"] >= report["params"]  # 8-bit weights + int32 biases
    assert memory["activation_peak_bytes"] == 147_456 and memory["state_bytes"] == 0
    fits = run_cli("inspect", str(model), "--ram-budget", "1M", "--json")
    assert fits.returncode == 0 and json.loads(fits.stdout)["ram_budget"]["fits"] is True
    over = run_cli("inspect", str(model), "--ram-budget", "512K")
    assert over.returncode == 4
    assert "over the 512.0 KiB RAM budget" in over.stderr and "Traceback" not in over.stderr
    assert parse_bytes("512K") == 524_288 and parse_bytes("1.5M") == 1_572_864


def test_onnx_memory(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((64, 32), np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        [numpy_helper.from_array(w, "w")],
        value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 32])],
    )  # fmt: skip
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    memory = inspect_model(path)["memory"]
    assert memory["param_bytes"] == 64 * 32 * 4
    assert memory["activation_peak_bytes"] == 256 + 128 + 128  # x, h and y all alive at the Relu


# -- GPU ------------------------------------------------------------------------------------


def test_gpu_preflight_names_the_fused_lstm(coral):
    gpu = gpu_preflight(read_tflite(coral / "keras_lstm_mnist_ptq.tflite"))
    assert gpu["fully_accelerated"] is False and gpu["target"] == "gpu+cpu"
    assert [u["op"] for u in gpu["unsupported_ops"]] == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert gpu["ops_on_gpu"] == 4 and gpu["ops_on_cpu"] == 2


def test_gpu_preflight_cli(coral):
    full = run_cli("inspect", str(coral / "mobilenet_v2_1.0_224_quant.tflite"), "--target", "gpu", "--json")
    gpu = json.loads(full.stdout)["gpu"]
    assert gpu["fully_accelerated"] is True and gpu["unsupported_ops"] == []
    compiled = run_cli("inspect", str(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"), "--target", "gpu",
                       "--json")  # fmt: skip
    gpu = json.loads(compiled.stdout)["gpu"]
    assert gpu["target"] == "cpu" and gpu["unsupported_ops"][0]["op"] == "CUSTOM:edgetpu-custom-op"


# -- compiler output ------------------------------------------------------------------------

# Verbatim edgetpu_compiler 16 output (jveitchmichaelis/edgetpu-yolo, export.md; operator rows abridged there).
UNMAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
COMPILER_16 = f"""Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 3173 ms.

Input model: yolov5s-int8-224.tflite
Input size: 7.37MiB
Output model: yolov5s-int8-224_edgetpu.tflite
Output size: 8.34MiB
On-chip memory used for caching model parameters: 6.08MiB
On-chip memory remaining for caching model parameters: 0.00B
Off-chip memory used for streaming uncached model parameters: 1.70MiB
Number of Edge TPU subgraphs: 2
Total number of operations: 294
Operation log: yolov5s-int8-224_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will \
instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported \
by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 289
Number of operations that will run on CPU: 5

Operator                       Count      Status

RESIZE_NEAREST_NEIGHBOR        2          Mapped to Edge TPU
CONCATENATION                  1          {UNMAPPED}
TRANSPOSE                      1          {UNMAPPED}
CONV_2D                        62         Mapped to Edge TPU
Compilation child process completed within timeout period.
Compilation succeeded!
"""

# Verbatim edgetpu_compiler output for a float model (tensorflow/tensorflow#46806).
COMPILER_FLOAT = """Edge TPU Compiler version 15.0.340273435
Invalid model: heehoo.tflite
Model not quantized
"""


def test_compiler_log_is_parsed():
    info = parse_compiler_log(COMPILER_16)
    assert info["compiler_version"] == "16.0.384591198" and info["succeeded"] is True
    assert (info["ops_total"], info["ops_on_edgetpu"], info["ops_on_cpu"], info["subgraphs"]) == (294, 289, 5, 2)
    assert info["param_bytes_on_chip"] == round(6.08 * 2**20) and info["param_bytes_off_chip"] == round(1.70 * 2**20)
    assert info["on_chip_remaining_bytes"] == 0
    assert info["operators"][1] == {
        "op": "CONCATENATION", "count": 1,
        "status": UNMAPPED,
    }  # fmt: skip
    assert sum(r["count"] for r in info["operators"]) == 66
    failed = parse_compiler_log(COMPILER_FLOAT)
    assert failed["succeeded"] is False and "ops_total" not in failed


# -- runtime: where it really ran -----------------------------------------------------------


def test_edgetpu_target_needs_a_compiled_model_and_the_runtime(coral):
    import edgekit
    from edgekit.errors import TargetUnavailableError
    from edgekit.runtime import targets

    with pytest.raises(TargetUnavailableError, match="not compiled for the Edge TPU"):
        edgekit.load(coral / "mobilenet_v1_0.25_128_quant.tflite", target="edgetpu")
    if not targets.edgetpu_runtime().available:
        with pytest.raises(TargetUnavailableError, match="libedgetpu"):
            edgekit.load(coral / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", target="edgetpu")


def test_native_output_never_reaches_json_stdout(tmp_path):
    """A native library writing to fd 1 (LiteRT's GPU accelerator does: "INFO: Loaded OpenCL library") and fd 2
    inside a command leaves ``--json`` stdout parseable and the terminal clean; ``--verbose`` shows it on stderr."""
    import subprocess
    import sys

    script = tmp_path / "native.py"
    script.write_text(
        "import os, sys, click\n"
        "from edgekit.cli import app, emit_json, main\n"
        "@app.command('native')\n"
        "def native():\n"
        "    os.write(1, b'INFO: Loaded OpenCL library with dlopen.\\n')\n"
        "    os.write(2, b'WARNING: [dawn] no adapters\\n')\n"
        "    emit_json({'ok': True})\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    quiet = subprocess.run([sys.executable, str(script), "native"], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and json.loads(quiet.stdout) == {"ok": True}
    assert "INFO" not in quiet.stderr and "WARNING" not in quiet.stderr
    loud = subprocess.run([sys.executable, str(script), "-v", "native"], capture_output=True, text=True, timeout=60)
    assert json.loads(loud.stdout) == {"ok": True}
    assert "Loaded OpenCL library" in loud.stderr and "no adapters" in loud.stderr


def test_bench_gpu_json_is_clean_and_honest(coral):
    r = run_cli("bench", str(coral / "mobilenet_v2_1.0_224_quant.tflite"), "--target", "gpu", "--runs", "2", "--json")
    assert r.returncode == 0
    result = json.loads(r.stdout)  # nothing but JSON on stdout
    if result["unavailable_reason"]:  # no GPU here: measured on the CPU, and says so
        assert result["target_used"] == "cpu" and result["fully_accelerated"] is None
        assert "gpu unavailable" in r.stderr
    else:
        assert result["target_used"] in ("gpu", "gpu+cpu")
        assert result["fully_accelerated"] is (result["target_used"] == "gpu")
    assert not [ln for ln in r.stderr.splitlines() if ln.startswith(("INFO:", "WARNING:", "ERROR:"))]

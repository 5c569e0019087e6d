"""Helpers shared by the test files: paths, a CLI runner in a child process, and small models and checks.

The Keras model builders live in :mod:`tests.keras_models`; fixtures live in ``tests/conftest.py``.
This module imports nothing from the build lane (no TensorFlow, no Keras) at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEKIT_SHARED", REPO.parent / "shared"))
CORAL = SHARED / "coral"

# What the runtime lane must never import.
BUILD_LANE = ["tensorflow", "keras", "tf_keras", "tf2onnx", "onnx", "tensorflow_model_optimization"]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run ``python -m edgekit ARGS`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def by_token(manifest: dict) -> dict[str, dict]:
    """A convert manifest's artifacts by their ``--to`` token."""
    return {a["precision_token"]: a for a in manifest["artifacts"]}


def assert_clean_failure(res: CliResult, *needles: str) -> None:
    """One ``edgekit: error:`` line on stderr, exit code 2, nothing on stdout, and each needle in that line."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


def gemm_model(path, *, quantized: bool = False) -> None:
    """A tiny ONNX graph (Gemm → Relu, batch dimension free), optionally behind an int8 QuantizeLinear/Dequantize."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    inits = [w, b]
    if quantized:
        inits += [
            numpy_helper.from_array(np.array(0.05, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "zp"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"]),
            helper.make_node("Gemm", ["xd", "w", "b"], ["h"]),
            helper.make_node("Relu", ["h"], ["y"]),
        ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-tests", ir_version=10
    )
    model.metadata_props.add(key="labels", value="a,b,c")
    onnx.save(model, path)

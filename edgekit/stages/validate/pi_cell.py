"""A validate cell on the ``pi`` target: the artifact run by the Pi's own software stack.

The inputs are bound (quantized) here, by the x86 runner of the same file, run row by row by
:mod:`edgekit.runtime.pi_worker` under the Pi's Python (natively on an aarch64 host, else under qemu-user),
and dequantized here. Status ``checked``: outputs, metrics and agreement, but no latency when emulated
(``latency_reason`` says why: emulated time is not Pi time). On an aarch64 host a pi cell is the CPU cell.

Example:
    >>> measure_on_pi(Cell("m_int8.tflite", "pi", 1), data, Path("out.npz"))["status"]  # doctest: +SKIP
    'checked'
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.stages.validate.data import InputsFile

EMULATED_LATENCY = "emulated (qemu-user on this x86 host): emulated time is not Pi time, so no latency is reported"


def measure_on_pi(artifact: str, data: InputsFile, outputs_npz: Path) -> dict[str, Any]:
    """Run ``artifact`` on the Pi stack over every sample; save dequantized outputs; return the cell's result.

    Example:
        >>> measure_on_pi("m.onnx", data, Path("out.npz"))["status"]  # doctest: +SKIP
        'unavailable'
    """
    from edgekit.errors import EdgekitError, TargetUnavailableError
    from edgekit.runtime import load
    from edgekit.runtime.pi import pi_stack
    from edgekit.runtime.specs import dequantize

    if not artifact.endswith(".tflite"):
        return {"status": "unavailable", "reason": "pi: the Pi stack runs TFLite files (what Pi bundles ship)"}
    try:
        stack = pi_stack()
        runner = load(artifact)
    except TargetUnavailableError as exc:
        return {"status": "unavailable", "reason": str(exc)}
    except EdgekitError as exc:
        return {"status": "failed", "reason": str(exc)}
    if runner.model.edgetpu_compiled:
        return {"status": "unavailable", "reason": "pi: the file is compiled for the Edge TPU (a coral target)"}
    arrays = runner.bind(data.feeds([s.name for s in runner.inputs]))
    reset = ["--reset"] if runner.model.variable_tensors else []
    worker = Path(__file__).resolve().parents[2] / "runtime" / "pi_worker.py"
    with tempfile.TemporaryDirectory(prefix="edgekit-pi-cell-") as tmp:
        inputs, raw = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(inputs, **{f"x{k}": a for k, a in enumerate(arrays)})
        ran = stack.run([str(worker), str(Path(artifact).resolve()), str(inputs), str(raw), *reset], timeout=3600)
        if ran.returncode != 0:
            last = (ran.stderr.strip().splitlines() or [f"exit {ran.returncode}"])[-1]
            return {"status": "failed", "reason": f"pi: {last[:300]}"}
        with np.load(raw) as f:
            outputs = [f[f"y{k}"] for k in range(len(runner.outputs))]
            litert = str(f["litert"])
    dequantized = {spec.name: dequantize(y, spec) if spec.is_quantized else y.astype(np.float32)
                   for spec, y in zip(runner.outputs, outputs, strict=True)}  # fmt: skip
    np.savez(outputs_npz, times_ms=np.empty(0), **{f"y:{k}": v for k, v in dequantized.items()})
    why = EMULATED_LATENCY if stack.emulated else "a native aarch64 host: the cpu cell's latency is this stack's"
    backend = f"ai-edge-litert {litert} (aarch64, Python {stack.python_version})"
    return {"status": "checked", "target_used": "pi", "emulated": stack.emulated, "backend": backend,
            "samples": len(arrays[0]), "latency_ms": None, "init_ms": None, "peak_rss_mb": None,
            "latency_reason": why}  # fmt: skip

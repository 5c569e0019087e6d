"""The Edge TPU step of ``edgekit convert``: pre-flight a full-integer model and run ``edgetpu_compiler``.

``convert MODEL --to edgetpu`` calls :func:`compile_for_edgetpu` on its int8 artifact;
``convert MODEL.tflite --to edgetpu`` is :func:`compile_tflite`. Neither imports TensorFlow.
Where the compiler is not installed (it is an x86-64 package from Coral's own repository) the
step stops after the pre-flight and says ``compiler unavailable: ...``; a model is only ever
reported compiled when the compiler wrote it and it holds ``edgetpu-custom-op``.

Example:
    >>> m = compile_tflite("mobilenet_v1_0.25_128_quant.tflite", "runs/coral", to="edgetpu")  # doctest: +SKIP
    >>> m["edgetpu"]["preflight"]["ops_cpu"], m["failed"][0]["unavailable"]  # doctest: +SKIP
    (0, True)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.io import sha256_file
from edgekit.common.parity import compare
from edgekit.errors import ConversionError, InputError
from edgekit.formats.tflite import read_tflite
from edgekit.preflight.edgetpu import edgetpu_preflight, require_compilable
from edgekit.rundir import Record, RunDir
from edgekit.runtime import targets
from edgekit.stages.convert.check import Checked
from edgekit.stages.convert.settings import EDGETPU, ConvertSettings


def compile_for_edgetpu(
    run_dir: Path, int8_name: str | None, *, timeout: float = 600
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """Pre-flight and compile a full-integer model in ``run_dir`` for the Edge TPU.

    Returns ``(edgetpu, artifact, failure)``: the pre-flight and compiler record for the
    manifest, the compiled artifact's entry (None unless the compiler ran and mapped ops), and
    the failure entry (None on success). A missing compiler is a failure that says
    ``compiler unavailable: ...``; nothing is ever reported compiled that was not.

    Example:
        >>> edgetpu, compiled, failure = compile_for_edgetpu(Path("runs/m"), "m_int8.tflite")  # doctest: +SKIP
        >>> failure["error"]  # doctest: +SKIP
        'edgetpu: compiler unavailable: edgetpu_compiler not on PATH (...)'
    """
    from edgekit.stages.convert.compiler import compile_model

    if int8_name is None:
        failure = {"token": EDGETPU, "error": "edgetpu: the full-integer tflite:int8 model it compiles failed"}
        return {"model": None, "preflight": None, "compiler": None}, None, failure
    preflight = edgetpu_preflight(read_tflite(run_dir / int8_name))
    record: dict[str, Any] = {"model": int8_name, "preflight": preflight, "compiler": None}
    status = targets.edgetpu_compiler()
    if not status.available:
        total = preflight["ops_mapped"] + preflight["ops_cpu"]
        record["compiler"] = {"available": False, "reason": status.reason}
        error = (f"edgetpu: compiler unavailable: {status.reason}; {int8_name} is the full-integer model "
                 f"(pre-flight: {preflight['ops_mapped']} of {total} ops would map to the Edge TPU)")  # fmt: skip
        return record, None, {"token": EDGETPU, "error": error, "unavailable": True}
    start = time.perf_counter()
    try:
        info = compile_model(run_dir / int8_name, run_dir, compiler=status.detail, timeout=timeout)
    except ConversionError as exc:
        record["compiler"] = {"available": True, "error": str(exc)}
        return record, None, {"token": EDGETPU, "error": f"edgetpu: {exc}"}
    path = Path(info.pop("path"))
    record["compiler"] = {"available": True, **info}
    runtime = targets.edgetpu_runtime()
    artifact = {
        "path": path.name,
        "format": "tflite",
        "precision": "edgetpu",
        "precision_token": EDGETPU,
        "compiled_from": int8_name,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "verdict": "unchecked",
        "parity": {"unavailable": f"edgetpu {runtime.describe()}: the compiled model runs only on an Edge TPU"},
        "compiler": info,
        "convert_seconds": round(time.perf_counter() - start, 3),
        "reused": False,
    }
    return record, artifact, None


def check_on_edgetpu(
    path: Path, x: dict[str, np.ndarray], reference: dict[str, np.ndarray], meta: dict[str, Any]
) -> dict[str, Any]:
    """Run a compiled model on the Edge TPU against the Keras outputs (int8 tolerance); its verdict and parity.

    Example:
        >>> check_on_edgetpu(Path("m_int8_edgetpu.tflite"), x, reference, meta)["verdict"]  # doctest: +SKIP
        'pass'
    """
    from edgekit.runtime import load

    runner = load(path, target="edgetpu")
    outputs = dict(zip([s.name for s in runner.outputs], runner.run(x), strict=True))
    kinds = {name: out["kind"] for name, out in meta.get("output_kinds", {}).items()}
    parity = compare(reference, outputs, kinds=kinds, precision="int8")
    return {"parity": parity, "verdict": "pass" if parity["within_tolerance"] else "out_of_tolerance"}


def compile_tflite(source: str | Path, out: str | Path, *, to: str | None = None, timeout: float = 600) -> Record:
    """``edgekit convert MODEL.tflite --to edgetpu``: pre-flight and compile a full-integer TFLite file.

    A float, dynamic-shape or already-compiled file is bad input (one line, nothing written).

    Example:
        >>> m = compile_tflite("m_int8.tflite", "runs/m", to="edgetpu")  # doctest: +SKIP
        >>> m["edgetpu"]["preflight"]["ops_cpu"]  # doctest: +SKIP
        0
    """
    tokens = [t.strip() for t in (to or "").split(",") if t.strip()]
    if tokens != [EDGETPU]:
        raise InputError(
            f"{source}: a .tflite file can only be compiled for the Edge TPU (--to edgetpu); "
            "convert the Keras model for other outputs"
        )
    require_compilable(read_tflite(source))
    run = RunDir(out).prepare()
    run_dir = run.root
    name = Path(source).name
    if not (run_dir / name).exists() or not (run_dir / name).samefile(source):
        shutil.copyfile(source, run_dir / name)
    edgetpu, compiled, failure = compile_for_edgetpu(run_dir, name, timeout=timeout)
    body = {
        "source": {"path": str(source), "sha256": sha256_file(Path(source))},
        "settings": {"to": [EDGETPU], "strict": False},
        "tools": {},
        "task": {},
        "conversion": {"route": "edgetpu_compiler"},
        "artifacts": [compiled] if compiled else [],
        "failed": [failure] if failure else [],
        "warnings": [],
        "edgetpu": edgetpu,
    }
    return run.write_record("convert", body)


def edgetpu_step(run: RunDir, checked: Checked, settings: ConvertSettings) -> dict[str, Any]:
    """The ``edgetpu`` target step of ``convert``: compile the checked ``tflite:int8`` artifact for the Edge TPU,
    and check it on an Edge TPU where one is attached; returns the record's ``edgetpu`` section.

    Example:
        >>> edgetpu_step(RunDir("runs/m"), checked, ConvertSettings(to="edgetpu"))["compiler"]  # doctest: +SKIP
        {'available': False, 'reason': 'edgetpu_compiler not on PATH (...)'}
    """
    int8 = next((a for a in checked.artifacts if a["precision_token"] == "tflite:int8"), None)
    record, compiled, failure = compile_for_edgetpu(run.root, int8["path"] if int8 else None, timeout=settings.timeout)
    if compiled is not None:
        compiled.update({k: int8[k] for k in ("threshold", "threshold_calibration") if int8 and k in int8})
        if targets.edgetpu_runtime().available and checked.data is not None:
            data = checked.data
            compiled.update(check_on_edgetpu(run.root / compiled["path"], data.x, data.reference, data.meta))
        checked.artifacts.append(compiled)
    if failure is not None:
        checked.failures[EDGETPU] = failure
    return record

"""Drive Coral's ``edgetpu_compiler`` and read what it says.

The compiler is an x86-64 Debian package from Coral's repository. It writes
``<stem>_edgetpu.tflite`` and ``<stem>_edgetpu.log`` into ``-o DIR`` and prints a summary:

    Edge TPU Compiler version 16.0.384591198
    Model compiled successfully in 3173 ms.
    Input model: m_int8.tflite
    ...
    On-chip memory used for caching model parameters: 6.08MiB
    On-chip memory remaining for caching model parameters: 0.00B
    Off-chip memory used for streaming uncached model parameters: 1.70MiB
    Number of Edge TPU subgraphs: 1
    Total number of operations: 294
    Number of operations that will run on Edge TPU: 289
    Number of operations that will run on CPU: 5
    Operator                       Count      Status
    CONV_2D                        62         Mapped to Edge TPU

This module never imports TensorFlow. A compiled file is only reported when it
exists and holds ``edgetpu-custom-op``.

Example:
    >>> info = parse_compiler_log(open("compile.txt").read())  # doctest: +SKIP
    >>> info["ops_on_edgetpu"], info["param_bytes_off_chip"]  # doctest: +SKIP
    (289, 1782579)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from edgekit.errors import ConversionError
from edgekit.formats.tflite import read_tflite

_SIZE = re.compile(r"([\d.]+)\s*(B|KiB|MiB|GiB)")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_FIELDS = {
    "compiler_version": (r"Edge TPU Compiler version (\S+)", str),
    "subgraphs": (r"Number of Edge TPU subgraphs:\s*(\d+)", int),
    "ops_total": (r"Total number of operations:\s*(\d+)", int),
    "ops_on_edgetpu": (r"Number of operations that will run on Edge TPU:\s*(\d+)", int),
    "ops_on_cpu": (r"Number of operations that will run on CPU:\s*(\d+)", int),
    "param_bytes_on_chip": (r"On-chip memory used for caching model parameters:\s*(\S+)", "size"),
    "on_chip_remaining_bytes": (r"On-chip memory remaining for caching model parameters:\s*(\S+)", "size"),
    "param_bytes_off_chip": (r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)", "size"),
}
_OPERATOR_ROW = re.compile(r"^([A-Z][A-Z0-9_:\-]+)\s+(\d+)\s+(\S.*)$")


def _bytes(text: str) -> int | None:
    match = _SIZE.fullmatch(text.strip())
    return round(float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def parse_compiler_log(text: str) -> dict[str, Any]:
    """The figures and the operator table of ``edgetpu_compiler -s`` output.

    ``operators`` lists ``{"op", "count", "status"}`` rows; when the compiler printed no
    "will run on" lines (everything mapped), ``ops_on_edgetpu`` is the total and
    ``ops_on_cpu`` 0.

    Example:
        >>> parse_compiler_log("Total number of operations: 31\\nOff-chip memory used for streaming "
        ...                    "uncached model parameters: 0.00B\\n")["ops_on_cpu"]
        0
    """
    info: dict[str, Any] = {}
    for key, (pattern, kind) in _FIELDS.items():
        match = re.search(pattern, text)
        if match:
            value = match.group(1)
            info[key] = _bytes(value) if kind == "size" else kind(value)
    if "ops_total" in info and "ops_on_cpu" not in info:
        info["ops_on_edgetpu"], info["ops_on_cpu"] = info["ops_total"], 0
    rows = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("Operator") and "Status" in line:
            in_table = True
            continue
        if in_table and (match := _OPERATOR_ROW.match(line.strip())):
            rows.append({"op": match.group(1), "count": int(match.group(2)), "status": match.group(3).strip()})
    info["operators"] = rows
    info["succeeded"] = "compiled successfully" in text and "Compilation failed" not in text
    return info


def _failure_line(text: str) -> str:
    for marker in ("Invalid model", "Model not quantized", "Compilation failed", "ERROR", "Internal compiler error"):
        for line in text.splitlines():
            if marker in line:
                return line.strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def compile_model(model: Path, out_dir: Path, *, compiler: str = "edgetpu_compiler", timeout: float = 600) -> dict:
    """Run the compiler on a full-integer ``.tflite``; return the parsed log and the compiled file's path.

    Raises :class:`~edgekit.errors.ConversionError` (naming the compiler's own message) when it
    fails or when its output is not an Edge TPU model.

    Example:
        >>> compile_model(Path("m_int8.tflite"), Path("runs/m"))["path"]  # doctest: +SKIP
        'runs/m/m_int8_edgetpu.tflite'
    """
    cmd = [compiler, "-s", "-o", str(out_dir), str(model)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"edgetpu_compiler did not finish in {timeout:.0f} s on {model.name}") from None
    except OSError as exc:
        raise ConversionError(f"edgetpu_compiler could not start: {exc}") from None
    text = proc.stdout + proc.stderr
    info = parse_compiler_log(text)
    compiled = out_dir / f"{model.stem}_edgetpu.tflite"
    if proc.returncode != 0 or not info["succeeded"] or not compiled.is_file():
        raise ConversionError(f"edgetpu_compiler failed on {model.name}: {_failure_line(text)}")
    if not read_tflite(compiled).edgetpu_compiled:
        compiled.unlink()
        raise ConversionError(f"edgetpu_compiler mapped no op of {model.name} (no edgetpu-custom-op in its output)")
    (out_dir / f"{model.stem}_edgetpu_compiler.txt").write_text(text)
    return {**info, "path": str(compiled), "command": " ".join(cmd)}

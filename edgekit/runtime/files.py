"""Checks on model paths shared by every command: exists, is a file, not empty, known format.

Example:
    >>> model_format("net.onnx")
    'onnx'
"""

from __future__ import annotations

from pathlib import Path

from edgekit.common.hints import with_hint
from edgekit.errors import InputError

MODEL_FORMATS = {".tflite": "tflite", ".onnx": "onnx"}


def model_format(path: str | Path) -> str:
    """The format of a model file, from its extension.

    Example:
        >>> model_format("model.bin")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: model.bin: unknown model extension '.bin' (expected .tflite or .onnx)
    """
    suffix = Path(path).suffix.lower()
    if suffix not in MODEL_FORMATS:
        raise InputError(
            with_hint(f"{path}: unknown model extension {suffix!r} (expected {' or '.join(MODEL_FORMATS)})", path)
        )
    return MODEL_FORMATS[suffix]


def check_model_path(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking it names a non-empty, readable file.

    Example:
        >>> check_model_path("/")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: /: is a directory, not a model file
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not a model file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise InputError(f"{path}: file is empty")
    return p


def read_model_bytes(path: str | Path) -> bytes:
    """Read a model file whole after :func:`check_model_path`.

    Example:
        >>> read_model_bytes("missing.onnx")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.onnx: no such file
    """
    p = check_model_path(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None

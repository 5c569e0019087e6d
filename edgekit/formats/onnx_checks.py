"""Structural checks an ONNX file must pass before ONNX Runtime sees it.

ONNX Runtime validates a graph itself (unknown ops, dangling inputs, type mismatches come back as exceptions,
none crashed it in issue 21's fuzzing), but it allocates what a file asks for: a graph input whose dimension
was mutated to 2^24 made ``bench`` take 9.8 GB. :func:`check_onnx_structure` refuses, naming what is wrong:

- a graph input with a negative dimension, or over the ``input_values`` limit (:mod:`edgekit.limits`);
- an initializer with a negative dimension, or over the ``tensor_bytes`` limit.

Example:
    >>> check_onnx_structure(read_onnx("model.onnx"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import ModelFormatError
from edgekit.formats.tflite_checks import ITEMSIZE
from edgekit.limits import limit, over

if TYPE_CHECKING:
    from edgekit.formats.onnx import OnnxModel


def _signed(d: int) -> int:
    return d - (1 << 64) if d >= 1 << 63 else d  # a varint of a negative int64


def _why(model: OnnxModel) -> str | None:
    for value in model.inputs:
        dims = [_signed(d) for d in value.shape if isinstance(d, int)]
        if any(d < 0 for d in dims):
            return f"graph input {value.name!r} has a negative dimension {list(value.shape)}"
        if (count := int(np.prod(dims, dtype=np.float64))) > limit("input_values"):
            return over("input_values", f"graph input {value.name!r} asks for {count:,} values {list(value.shape)}")
    for name, (dtype, dims) in model.initializers.items():
        if any(d < 0 for d in dims):
            return f"initializer {name!r} has a negative dimension {list(dims)}"
        size = int(np.prod(dims, dtype=np.float64)) * ITEMSIZE.get(dtype, 1)
        if size > limit("tensor_bytes"):
            return over("tensor_bytes", f"initializer {name!r} asks for {size:,} bytes {list(dims)}")
    return None


def check_onnx_structure(model: OnnxModel) -> None:
    """Refuse a model whose inputs or weights ask for more than the limits allow (see the module docstring).

    Example:
        >>> check_onnx_structure(model)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.ModelFormatError: m.onnx: graph input 'x' has a negative dimension [1, -5] ...
    """
    if why := _why(model):
        raise ModelFormatError(f"{model.path}: {why} (refused before a runtime loads it)")

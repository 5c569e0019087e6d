"""Tensor specs and the (de)quantization every runner applies at its boundary.

Example:
    >>> spec = TensorSpec("input", (1, 3), "uint8", scale=0.5, zero_point=128)
    >>> quantize(np.array([[-1.0, 0.0, 1.0]]), spec)
    array([[126, 128, 130]], dtype=uint8)
    >>> dequantize(np.array([[126, 128, 130]], dtype=np.uint8), spec)
    array([[-1.,  0.,  1.]], dtype=float32)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

INTEGER_IO = ("int8", "uint8", "int16")
QUANTIZE_CHUNK = 1 << 16  # values per step of :func:`quantize`


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output.

    ``shape`` holds ``None`` for a dimension the model leaves open (dynamic batch,
    symbolic ONNX dims). ``scale``/``zero_point`` are set for quantized tensors.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def is_quantized(self) -> bool:
        """True when values are integers standing for ``scale * (q - zero_point)``."""
        return self.dtype in INTEGER_IO and bool(self.scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with a ``quantization`` entry (or ``None``).

        Example:
            >>> TensorSpec("x", (1, 2), "float32").to_dict()["quantization"] is None
            True
        """
        d = asdict(self)
        scale, zp = d.pop("scale"), d.pop("zero_point")
        d["shape"] = list(self.shape)
        d["quantization"] = {"scale": scale, "zero_point": zp} if self.is_quantized else None
        return d


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Map float values onto the spec's integer grid (round to nearest, saturate).

    Example:
        >>> quantize(np.array([1000.0]), TensorSpec("x", (1,), "int8", 1.0, 0))
        array([127], dtype=int8)
    """
    values = np.asarray(values)
    flat = values.reshape(-1)
    out = np.empty(flat.size, spec.dtype)
    info = np.iinfo(spec.dtype)
    table = None
    if values.dtype in (np.uint8, np.int8):  # 8-bit pixels: a 256-entry table, then one gather per value
        table = quantize(np.arange(256, dtype=np.uint8).view(values.dtype).astype(np.float32), spec)
        flat = flat.view(np.uint8)
    # in chunks that stay in cache, in place: a 1,000-image batch is 150 M values, and full-size
    # temporaries cost seconds of page faults
    for start in range(0, flat.size, QUANTIZE_CHUNK):
        chunk = flat[start : start + QUANTIZE_CHUNK]
        if table is not None:
            out[start : start + QUANTIZE_CHUNK] = table[chunk]
            continue
        q = chunk.astype(np.float32)
        q /= np.float32(spec.scale)
        np.rint(q, out=q)
        q += spec.zero_point
        np.clip(q, info.min, info.max, out=q)
        out[start : start + QUANTIZE_CHUNK] = q
    return out.reshape(values.shape)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Map the spec's integers back to float32.

    Example:
        >>> dequantize(np.array([2], dtype=np.int8), TensorSpec("x", (1,), "int8", 0.5, 0))
        array([1.], dtype=float32)
    """
    return ((values.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


def to_model_dtype(values: Any, spec: TensorSpec) -> np.ndarray:
    """Convert a user array to what the model takes: quantize real values, cast otherwise.

    An array already in the model's integer dtype passes through untouched (it holds quantized values);
    any other array for a quantized input holds real values, floats or integers such as uint8 pixels
    for an int8 input, and is quantized.

    Example:
        >>> to_model_dtype([[0.5, 1.0]], TensorSpec("x", (1, 2), "float32")).dtype
        dtype('float32')
        >>> to_model_dtype(np.array([[0, 255]], np.uint8), TensorSpec("x", (1, 2), "int8", 1.0, -128)).tolist()
        [[-128, 127]]
    """
    arr = np.asarray(values)
    if arr.dtype == np.dtype(spec.dtype):
        return arr
    if spec.is_quantized and arr.dtype.kind in "biuf":
        return quantize(arr if arr.dtype.kind != "b" else arr.astype(np.uint8), spec)
    return arr.astype(spec.dtype)


def random_input(spec: TensorSpec, batch: int = 1, seed: int = 0) -> np.ndarray:
    """Random data of the spec's shape (open dims → ``batch`` first, then 1) and dtype.

    Example:
        >>> random_input(TensorSpec("x", (None, 4), "uint8"), batch=2).shape
        (2, 4)
    """
    rng = np.random.default_rng(seed)
    dims = tuple(batch if i == 0 and (d is None or batch > 1) else (d or 1) for i, d in enumerate(spec.shape))
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 255) + 1, size=dims, dtype=dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=dims).astype(bool)
    return rng.standard_normal(dims).astype(dtype)

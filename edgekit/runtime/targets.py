"""Which hardware targets can run a model here, each with the reason when it cannot.

A target is never reported as usable because it was asked for: each probe
actually loads the library or creates the accelerator and keeps the error.

Example:
    >>> cpu().available
    True
"""

from __future__ import annotations

import ctypes
import functools
import shutil
from dataclasses import dataclass

from edgekit.runtime.native import captured_native_stderr

TARGETS = ("cpu", "gpu", "edgetpu")
EDGETPU_LIBRARY = "libedgetpu.so.1"


@dataclass(frozen=True)
class Availability:
    """Whether something can be used here; ``reason`` says why not, ``detail`` what was found."""

    name: str
    available: bool
    reason: str = ""
    detail: str = ""

    def describe(self) -> str:
        """One line: ``available (detail)`` or ``unavailable: reason``.

        Example:
            >>> Availability("gpu", False, "No adapters found").describe()
            'unavailable: No adapters found'
        """
        if self.available:
            return f"available ({self.detail})" if self.detail else "available"
        return f"unavailable: {self.reason}"


def cpu() -> Availability:
    """The CPU is always there."""
    return Availability("cpu", True, detail="XNNPACK / ONNX Runtime CPU EP")


@functools.cache
def edgetpu_runtime() -> Availability:
    """Whether ``libedgetpu.so.1`` (the Edge TPU runtime) can be loaded.

    Example:
        >>> edgetpu_runtime().name
        'edgetpu'
    """
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
    except OSError as exc:
        return Availability("edgetpu", False, f"{exc} (install libedgetpu1-std and plug in a Coral device)")
    return Availability("edgetpu", True, detail=EDGETPU_LIBRARY)


@functools.cache
def edgetpu_compiler() -> Availability:
    """Whether ``edgetpu_compiler`` is on PATH.

    Example:
        >>> edgetpu_compiler().name
        'edgetpu_compiler'
    """
    path = shutil.which("edgetpu_compiler")
    if path is None:
        return Availability(
            "edgetpu_compiler", False, "edgetpu_compiler not on PATH (Debian package edgetpu-compiler, x86-64 only)"
        )
    return Availability("edgetpu_compiler", True, detail=path)


def _first_line(text: str) -> str:
    lines = [ln.strip(" └") for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


@functools.cache
def litert_gpu() -> Availability:
    """Whether LiteRT's GPU accelerator can compile a one-op model here.

    Example:
        >>> litert_gpu().name
        'gpu'
    """
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    except ImportError as exc:
        return Availability("gpu", False, f"LiteRT CompiledModel API missing ({exc})")
    from edgekit.runtime.probe_model import tiny_add_model

    with captured_native_stderr() as log:
        try:
            model = CompiledModel.from_buffer(tiny_add_model(), HardwareAccelerator.GPU)
            accelerated = model.is_fully_accelerated()
        except Exception as exc:  # LiteRT raises RuntimeError with native context
            err: Exception | None = exc
        else:
            err = None
    if err is not None:
        reason = log.find("No adapters found", "Failed to initialize") or _first_line(str(err))
        return Availability("gpu", False, f"LiteRT GPU accelerator: {reason}")
    if not accelerated:
        return Availability("gpu", False, "LiteRT GPU accelerator did not take the probe model")
    return Availability("gpu", True, detail="LiteRT GPU accelerator (WebGPU/OpenCL)")


@functools.cache
def onnxruntime_gpu() -> Availability:
    """Whether ONNX Runtime has a GPU execution provider (CUDA, ROCm, DirectML, CoreML).

    Example:
        >>> onnxruntime_gpu().name
        'gpu'
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return Availability("gpu", False, f"onnxruntime not installed ({exc})")
    gpu_providers = [
        p for p in ort.get_available_providers()
        if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider",
                 "DmlExecutionProvider", "CoreMLExecutionProvider")
    ]  # fmt: skip
    if not gpu_providers:
        return Availability(
            "gpu", False,
            f"onnxruntime {ort.__version__} has only {', '.join(ort.get_available_providers())} "
            "(install onnxruntime-gpu for CUDA)",
        )  # fmt: skip
    return Availability("gpu", True, detail=", ".join(gpu_providers))

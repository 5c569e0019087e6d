"""Run ``.onnx`` models on ONNX Runtime (CPU execution provider, or a GPU one when present).

Example:
    >>> runner = OnnxRunner("model.onnx", threads=2)  # doctest: +SKIP
"""

from __future__ import annotations

import re

import numpy as np

from edgekit.errors import InferenceError, ModelFormatError, TargetUnavailableError
from edgekit.formats.onnx import OnnxModel, parse_onnx
from edgekit.runtime import targets
from edgekit.runtime.base import Runner
from edgekit.runtime.files import read_model_bytes
from edgekit.runtime.specs import TensorSpec

ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(uint16)": "uint16", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}  # fmt: skip
_ORT_LOCATION = re.compile(r"\S+\.(?:cc|h|cpp):\d+ .*?\)\s(?=[A-Z])")
GPU_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")


def _ort_message(exc: BaseException) -> str:
    """ORT's message without the C++ source location and signature it starts with."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _ORT_LOCATION.sub("", text).strip()


def _spec(arg: object) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)  # type: ignore[attr-defined]
    return TensorSpec(arg.name, shape, ORT_DTYPES.get(arg.type, "float32"))  # type: ignore[attr-defined]


class OnnxRunner(Runner):
    """An ``.onnx`` model on ONNX Runtime.

    Example:
        >>> OnnxRunner("model.onnx", target="cpu")  # doctest: +SKIP
    """

    format = "onnx"

    def __init__(
        self,
        path: str,
        *,
        threads: int | None = None,
        target: str = "cpu",
        model: OnnxModel | None = None,
        blob: bytes | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path, self.threads, self.target = str(path), threads, target
        blob = blob if blob is not None else read_model_bytes(path)
        self.model = model if model is not None else parse_onnx(blob, self.path)
        self.backend = "onnxruntime"
        if target == "edgetpu":
            raise TargetUnavailableError("edgetpu unavailable: the Edge TPU runs TFLite models only")
        providers = ["CPUExecutionProvider"]
        if target == "gpu":
            status = targets.onnxruntime_gpu()
            if not status.available:
                raise TargetUnavailableError(f"gpu unavailable: {status.reason}")
            providers = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()] + providers
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(blob, sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own pybind exception types
            raise ModelFormatError(f"{self.path}: ONNX Runtime cannot load it: {_ort_message(exc)}") from None
        if target == "gpu" and self._session.get_providers()[0] not in GPU_PROVIDERS:
            raise TargetUnavailableError(
                f"gpu unavailable: ONNX Runtime fell back to {self._session.get_providers()[0]}"
            )
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self._names = [s.name for s in self.inputs]

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._session.run(None, dict(zip(self._names, arrays, strict=True))))
        except Exception as exc:
            raise InferenceError(f"{self.path}: invoke failed: {_ort_message(exc)}") from None

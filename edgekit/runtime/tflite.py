"""Run ``.tflite`` models: LiteRT's Interpreter on CPU / Edge TPU, its CompiledModel on GPU.

The interpreter comes from ``ai_edge_litert`` when installed, else ``tflite_runtime``
(``runner.backend`` says which); never from TensorFlow, which is the build lane's.

Example:
    >>> runner = TFLiteRunner("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")  # doctest: +SKIP
    >>> runner.inputs[0].dtype  # doctest: +SKIP
    'uint8'
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from edgekit.errors import InferenceError, ModelFormatError, TargetUnavailableError
from edgekit.formats.tflite import EDGETPU_CUSTOM_OP, TensorInfo, TFLiteModel, parse_tflite
from edgekit.runtime import targets
from edgekit.runtime.base import Runner
from edgekit.runtime.files import read_model_bytes
from edgekit.runtime.native import captured_native_stderr
from edgekit.runtime.specs import TensorSpec

INTERPRETER_MODULES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


def interpreter_module() -> tuple[ModuleType, str]:
    """The first TFLite interpreter module that imports, and its package name.

    Example:
        >>> interpreter_module()[1]
        'ai-edge-litert'
    """
    for name, label in INTERPRETER_MODULES:
        try:
            return importlib.import_module(name), label
        except ImportError:
            continue
    raise InferenceError("no TFLite runtime: pip install ai-edge-litert (tflite-runtime for Python < 3.12 also works)")


def _spec(t: TensorInfo, name: str) -> TensorSpec:
    per_tensor = len(t.scales) == 1 and t.scales[0] != 0
    return TensorSpec(
        name=name,
        shape=tuple(None if d < 0 else d for d in t.shape_signature),
        dtype=t.dtype,
        scale=t.scales[0] if per_tensor else None,
        zero_point=t.zero_points[0] if per_tensor and t.zero_points else (0 if per_tensor else None),
    )


def io_specs(model: TFLiteModel) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs of a parsed model, named as its signature names them, in the subgraph's order.

    Example:
        >>> ins, outs = io_specs(parse_tflite(blob, "model.tflite"))  # doctest: +SKIP
    """
    graph = model.subgraphs[0]
    return (
        [_spec(graph.tensors[i], model.io_name(i)) for i in graph.inputs],
        [_spec(graph.tensors[i], model.io_name(i)) for i in graph.outputs],
    )


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "See instructions" not in ln]
    return " ".join(lines) or type(exc).__name__


class TFLiteRunner(Runner):
    """A ``.tflite`` model on LiteRT.

    Example:
        >>> TFLiteRunner("model.tflite", threads=2, target="cpu")  # doctest: +SKIP
    """

    format = "tflite"

    def __init__(
        self,
        path: str,
        *,
        threads: int | None = None,
        target: str = "cpu",
        model: TFLiteModel | None = None,
        blob: bytes | None = None,
    ) -> None:
        self.path, self.threads, self.target = str(path), threads, target
        self._blob = blob if blob is not None else read_model_bytes(path)
        self.model = model if model is not None else parse_tflite(self._blob, self.path)
        self.inputs, self.outputs = io_specs(self.model)
        if target == "gpu":
            self._open_compiled_model()
        else:
            self._open_interpreter()

    # -- CPU / Edge TPU: the classic Interpreter ------------------------------------------

    def _open_interpreter(self) -> None:
        module, self.backend = interpreter_module()
        delegates = []
        if self.target == "edgetpu":
            if not self.model.edgetpu_compiled:
                raise TargetUnavailableError(
                    f"edgetpu unavailable: {self.path} is not compiled for the Edge TPU "
                    f"(edgekit convert {self.path} --to edgetpu)"
                )
            status = targets.edgetpu_runtime()
            if not status.available:
                raise TargetUnavailableError(f"edgetpu unavailable: {status.reason}")
            try:
                delegates = [module.load_delegate(targets.EDGETPU_LIBRARY)]
            except ValueError as exc:  # the library loads but finds no device
                raise TargetUnavailableError(f"edgetpu unavailable: {_last_line(exc)}") from None
            cpu_ops = [op.name for op in self.model.subgraphs[0].ops if op.name != f"CUSTOM:{EDGETPU_CUSTOM_OP}"]
            self.fully_accelerated = not cpu_ops
            if cpu_ops:
                self.fallback_reason = f"the compiler left {len(cpu_ops)} op(s) on the CPU: {', '.join(cpu_ops)}"
        elif self.model.edgetpu_compiled:
            raise InferenceError(
                f"{self.path}: compiled for the Edge TPU ({EDGETPU_CUSTOM_OP}); run it with "
                f"--target edgetpu (edgetpu {targets.edgetpu_runtime().describe()}) or use the CPU twin"
            )
        with captured_native_stderr() as log:
            try:
                self._interp = module.Interpreter(
                    model_content=self._blob,
                    num_threads=self.threads,
                    experimental_delegates=delegates or None,
                )
                self._interp.allocate_tensors()
            except ValueError as exc:
                err: Exception | None = ModelFormatError(f"{self.path}: {_last_line(exc)}")
            except RuntimeError as exc:
                err = InferenceError(f"{self.path}: cannot prepare the model: {_last_line(exc)}")
            else:
                err = None
        if err is not None:
            raise err from None
        del log
        # Fused RNN ops keep their state in variable tensors that persist across invokes;
        # Keras models are stateless, so each inference starts from the zero state.
        self._stateful = bool(self.model.variable_tensors)
        details = self._interp.get_input_details()
        self._in_idx = [d["index"] for d in details]
        self._in_shapes = [tuple(d["shape"]) for d in details]
        self._out_idx = [d["index"] for d in self._interp.get_output_details()]
        self._run_native = self._run_interpreter

    def _run_interpreter(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        for pos, (idx, arr) in enumerate(zip(self._in_idx, arrays, strict=True)):
            if self._in_shapes[pos] != arr.shape:
                interp.resize_tensor_input(idx, arr.shape)
                interp.allocate_tensors()
                self._in_shapes[pos] = arr.shape
            interp.set_tensor(idx, arr)
        if self._stateful:
            interp.reset_all_variables()
        interp.invoke()
        return [interp.get_tensor(idx) for idx in self._out_idx]

    # -- GPU: LiteRT CompiledModel ------------------------------------------------------

    def _open_compiled_model(self) -> None:
        status = targets.litert_gpu()
        if not status.available:
            raise TargetUnavailableError(f"gpu unavailable: {status.reason}")
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        self.backend = "ai-edge-litert CompiledModel"
        accel = HardwareAccelerator.GPU | HardwareAccelerator.CPU
        with captured_native_stderr() as log:
            try:
                self._cm = CompiledModel.from_buffer(self._blob, accel)
            except RuntimeError as exc:
                raise InferenceError(f"{self.path}: the GPU accelerator cannot prepare it: {_last_line(exc)}") from None
        self.fully_accelerated = bool(self._cm.is_fully_accelerated())
        if not self.fully_accelerated:
            self.fallback_reason = self._gpu_fallback_reason(log.find("Failed", "not supported", "fall back"))
        self._cm_in = self._cm.create_input_buffers(0)
        self._cm_out = self._cm.create_output_buffers(0)
        self._run_native = self._run_compiled_model

    def _gpu_fallback_reason(self, native_line: str | None) -> str:
        """Why LiteRT kept ops on the CPU: the GPU delegate's rules for this graph, and LiteRT's own log line."""
        from edgekit.preflight.gpu import gpu_preflight

        unsupported = gpu_preflight(self.model)["unsupported_ops"]
        parts = [f"{u['op']} ({u['reason']})" for u in unsupported[:3]]
        if len(unsupported) > 3:
            parts.append(f"{len(unsupported) - 3} more")
        reason = (
            "ops the GPU does not take: " + "; ".join(parts) if parts else "LiteRT left part of the graph on the CPU"
        )
        return f"{reason} [LiteRT: {native_line}]" if native_line else reason

    def _run_compiled_model(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for buf, arr in zip(self._cm_in, arrays, strict=True):
            buf.write(arr)
        self._cm.run_by_index(0, self._cm_in, self._cm_out)
        outs = []
        for buf, spec in zip(self._cm_out, self.outputs, strict=True):
            shape = tuple(d or 1 for d in spec.shape)
            outs.append(buf.read(int(np.prod(shape)), np.dtype(spec.dtype)).reshape(shape))
        return outs

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self._run_native(arrays)
        except RuntimeError as exc:
            raise InferenceError(f"{self.path}: invoke failed: {_last_line(exc)}") from None

    def raw_interpreter(self):
        """The underlying LiteRT Interpreter (CPU / Edge TPU only), for bare-runtime comparisons."""
        return self._interp

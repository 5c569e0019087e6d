"""The interface every runner shares: bind user inputs, batch, (de)quantize, invoke.

Subclasses implement only :meth:`Runner._invoke` (one call of the native runtime
on arrays already in the model's dtypes and shapes).

Example:
    >>> import edgekit
    >>> runner = edgekit.load("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")  # doctest: +SKIP
    >>> runner.run(np.zeros((4, 128, 128, 3), np.float32))[0].shape  # doctest: +SKIP
    (4, 1001)
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.runtime.specs import TensorSpec, dequantize, to_model_dtype

Inputs = np.ndarray | Sequence[Any] | Mapping[str, Any]


def format_shape(shape: Sequence[int | None]) -> str:
    """``(1, 128, 128, 3)`` with ``?`` for open dims.

    Example:
        >>> format_shape((None, 10))
        '(?, 10)'
    """
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


class Runner(abc.ABC):
    """A loaded model ready to run; create with :func:`edgekit.load`.

    Attributes:
        path: the model file.
        format: ``tflite`` or ``onnx``.
        backend: the runtime package that runs it (``ai-edge-litert``, ``onnxruntime``...).
        target: the target asked for (``cpu``, ``gpu``, ``edgetpu``).
        target_used: where it really runs: the target, or ``gpu+cpu`` / ``edgetpu+cpu`` when the
            accelerator left ops to the CPU, ``cpu`` when it took none.
        fully_accelerated: whether the accelerator took every op (None on the CPU).
        fallback_reason: why some ops run on the CPU (None when none do).
        threads: the thread count asked for (``None``: the runtime's default).
        inputs / outputs: :class:`TensorSpec` of each model input and output.
    """

    path: str
    format: str
    backend: str
    target: str
    threads: int | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    fully_accelerated: bool | None = None
    fallback_reason: str | None = None

    @property
    def target_used(self) -> str:
        """Where the model runs: ``cpu``, ``gpu``, ``edgetpu``, or ``gpu+cpu`` / ``edgetpu+cpu`` when split."""
        return self.target if self.fully_accelerated is not False else f"{self.target}+cpu"

    @abc.abstractmethod
    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run the native runtime once on model-dtype arrays; return raw outputs."""

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes free on garbage collection
        """Release the native session (optional; the garbage collector also does it)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- binding ---------------------------------------------------------------------------

    def bind(self, inputs: Inputs) -> list[np.ndarray]:
        """Turn user inputs (one array, a list, or a name → array dict) into model-dtype arrays.

        Floats are quantized for integer inputs; shapes are checked (the batch
        dimension may differ where the model's batch is open or fixed at 1).

        Example:
            >>> runner.bind(np.zeros((1, 128, 128, 3)))[0].dtype  # doctest: +SKIP
            dtype('uint8')
        """
        if isinstance(inputs, Mapping):
            missing = [s.name for s in self.inputs if s.name not in inputs]
            unknown = sorted(set(inputs) - {s.name for s in self.inputs})
            if missing or unknown:
                raise InputError(
                    f"inputs must be named {[s.name for s in self.inputs]}; missing {missing}, unknown {unknown}"
                )
            values = [inputs[s.name] for s in self.inputs]
        elif isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
            values = [inputs]
        else:
            values = list(inputs)
        if len(values) != len(self.inputs):
            raise InputError(f"model takes {len(self.inputs)} input(s), got {len(values)}")
        arrays = []
        for spec, value in zip(self.inputs, values, strict=True):
            arr = np.asarray(value)
            self._check_shape(spec, arr.shape)
            arrays.append(np.ascontiguousarray(to_model_dtype(arr, spec)))
        batches = {a.shape[0] for a in arrays if a.ndim}
        if len(batches) > 1:
            raise InputError(f"inputs disagree on the batch size: {sorted(batches)}")
        return arrays

    @staticmethod
    def _check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
        ok = len(shape) == len(spec.shape) and all(
            want is None or want == got or (i == 0 and want == 1)
            for i, (want, got) in enumerate(zip(spec.shape, shape, strict=True))
        )
        if not ok:
            raise InputError(f"input {spec.name!r} expects shape {format_shape(spec.shape)}, got {format_shape(shape)}")

    # -- running ---------------------------------------------------------------------------

    def _loops_over_batch(self, arrays: list[np.ndarray]) -> bool:
        return any(
            spec.shape and spec.shape[0] == 1 and arr.ndim and arr.shape[0] > 1
            for spec, arr in zip(self.inputs, arrays, strict=True)
        )

    def invoke_bound(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run on arrays from :meth:`bind`, looping over rows when the model's batch is fixed at 1.

        Returns the raw (still quantized) outputs.
        """
        if not self._loops_over_batch(arrays):
            return self._invoke(arrays)
        rows = [self._invoke([a[i : i + 1] for a in arrays]) for i in range(arrays[0].shape[0])]
        return [np.concatenate(parts, axis=0) for parts in zip(*rows, strict=True)]

    def run(self, inputs: Inputs, *, dequantize_outputs: bool = True) -> list[np.ndarray]:
        """Run the model; return one array per output, dequantized to float32 by default.

        Example:
            >>> probs = runner.run(image_batch)[0]  # doctest: +SKIP
        """
        raw = self.invoke_bound(self.bind(inputs))
        if not dequantize_outputs:
            return raw
        return [dequantize(r, s) if s.is_quantized else r for r, s in zip(raw, self.outputs, strict=True)]

    def prepared(self, inputs: Inputs) -> Callable[[], list[np.ndarray]]:
        """Bind once; return a zero-argument function doing one inference (for benchmarks).

        Example:
            >>> step = runner.prepared(x)  # doctest: +SKIP
            >>> _ = step()  # doctest: +SKIP
        """
        arrays = self.bind(inputs)
        return lambda: self.invoke_bound(arrays)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: path, format, backend, target, threads, inputs, outputs."""
        return {
            "path": self.path,
            "format": self.format,
            "backend": self.backend,
            "target": self.target,
            "target_used": self.target_used,
            "fully_accelerated": self.fully_accelerated,
            "fallback_reason": self.fallback_reason,
            "threads": self.threads,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

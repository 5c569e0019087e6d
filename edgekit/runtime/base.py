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
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.runtime.specs import TensorSpec, dequantize, to_model_dtype

Inputs = np.ndarray | Sequence[Any] | Mapping[str, Any]
# A streaming model's state output is named after its state input plus one of these (edgekit writes "_next").
STATE_SUFFIXES = ("_next", "_out", "_new")
STATE_SUFFIX = STATE_SUFFIXES[0]


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

    # -- streaming -------------------------------------------------------------------------

    @functools.cached_property
    def state_pairs(self) -> list[tuple[int, int]]:
        """(input index, output index) of each state a streaming model carries: an input ``S`` and an output
        ``S_next`` (what ``edgekit convert --streaming`` writes), ``S_out`` or ``S_new``. Empty for other models.

        Example:
            >>> runner.state_pairs  # doctest: +SKIP
            [(1, 1), (2, 2)]
        """
        outputs = {s.name: i for i, s in enumerate(self.outputs)}
        pairs = [(i, next((outputs[s.name + x] for x in STATE_SUFFIXES if s.name + x in outputs), None))
                 for i, s in enumerate(self.inputs)]  # fmt: skip
        return [(i, o) for i, o in pairs if o is not None]

    def _state_pairs_or_refuse(self) -> list[tuple[int, int]]:
        pairs = self.state_pairs
        if not pairs:
            raise InputError(f"{self.path}: not a streaming model (no state input S with an output S{STATE_SUFFIX}); "
                             "convert the sequence model with edgekit convert --streaming")  # fmt: skip
        return pairs

    def reset(self) -> None:
        """Set every state of a streaming model to zero (the start of a stream).

        Example:
            >>> runner.reset()  # doctest: +SKIP
        """
        self._state = {self.inputs[i].name: np.zeros([d or 1 for d in self.inputs[i].shape], np.float32)
                       for i, _ in self._state_pairs_or_refuse()}  # fmt: skip

    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of a streaming model's state by input name (float, model space); assign one back to restore it.

        Example:
            >>> saved = runner.state; runner.step(x); runner.state = saved  # doctest: +SKIP
        """
        if not hasattr(self, "_state"):
            self.reset()
        return {k: v.copy() for k, v in self._state.items()}

    @state.setter
    def state(self, values: Mapping[str, np.ndarray]) -> None:
        current = self.state
        if set(values) != set(current):
            raise InputError(f"state must name {sorted(current)}, got {sorted(values)}")
        for name, value in values.items():
            if np.shape(value) != current[name].shape:
                raise InputError(f"state {name!r} has shape {np.shape(value)}, the model's is {current[name].shape}")
        self._state = {k: np.asarray(v, np.float32).copy() for k, v in values.items()}

    def step(self, x: Inputs) -> list[np.ndarray]:
        """One timestep of a streaming model: ``x`` in (one sample of its step input(s), as :meth:`run` takes
        them), that step's outputs out (dequantized, the state outputs left out), the state kept for the next.

        Example:
            >>> runner = edgekit.load("runs/lstm/model_streaming_fp32.tflite")  # doctest: +SKIP
            >>> [runner.step(row)[0] for row in stream]  # doctest: +SKIP
        """
        pairs = self._state_pairs_or_refuse()
        if not hasattr(self, "_state"):
            self.reset()
        state_inputs, state_outputs = {i for i, _ in pairs}, {o for _, o in pairs}
        step_specs = [s for i, s in enumerate(self.inputs) if i not in state_inputs]
        if isinstance(x, Mapping) and set(x) != {s.name for s in step_specs}:
            raise InputError(f"step takes {[s.name for s in step_specs]}, got {sorted(x)}")
        by_name = isinstance(x, Mapping)  # a mapping is read by name, in the model's order
        values = [x[s.name] for s in step_specs] if by_name else [x] if len(step_specs) == 1 else list(x)
        if len(values) != len(step_specs):
            raise InputError(
                f"step takes {len(step_specs)} input(s) ({[s.name for s in step_specs]}), got {len(values)}"
            )
        given = iter(self._one_step(np.asarray(v), s) for v, s in zip(values, step_specs, strict=True))
        feeds = [self._state[s.name] if i in state_inputs else next(given) for i, s in enumerate(self.inputs)]
        outputs = self.run(feeds)
        self._state = {self.inputs[i].name: outputs[o] for i, o in pairs}
        return [out for k, out in enumerate(outputs) if k not in state_outputs]

    @staticmethod
    def _one_step(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
        shape = [d or 1 for d in spec.shape]
        if value.size != int(np.prod(shape)):
            raise InputError(f"step input {spec.name!r} takes {int(np.prod(shape))} value(s) per step "
                             f"{format_shape(spec.shape)}, got {value.size}")  # fmt: skip
        return value.reshape(shape)

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

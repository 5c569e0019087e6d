"""The TF-free runtime core: one loader for ``.tflite`` and ``.onnx`` models.

Example:
    >>> from edgekit.runtime import load
    >>> runner = load("../shared/coral/mobilenet_v1_0.25_128_quant.tflite", threads=2)  # doctest: +SKIP
    >>> runner.run(images)[0].argmax(-1)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import InputError
from edgekit.runtime.base import Runner
from edgekit.runtime.files import model_format, read_model_bytes
from edgekit.runtime.specs import TensorSpec
from edgekit.runtime.targets import TARGETS

__all__ = ["Runner", "TensorSpec", "load"]


def load(path: str | Path, *, threads: int | None = None, target: str = "cpu", isolate: bool = False) -> Runner:
    """Load a ``.tflite`` or ``.onnx`` model for inference on ``target`` (cpu, gpu, edgetpu).

    The file is verified before any native runtime sees it (a ``.tflite``'s structure is checked:
    :mod:`edgekit.formats.tflite_checks`). A target that is not usable here raises
    :class:`~edgekit.errors.TargetUnavailableError` with the reason. ``isolate=True`` first loads the model
    and runs it once on generated input in a forked child: a native crash there raises
    :class:`~edgekit.errors.InferenceError` rather than ending this process (:mod:`edgekit.runtime.isolation`).

    Example:
        >>> load("missing.tflite")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.tflite: no such file
    """
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})")
    if threads is not None and threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    if isolate:
        from edgekit.runtime.isolation import probe_in_child
        from edgekit.runtime.specs import random_input

        def first_run() -> None:
            with load(path, threads=threads, target=target) as runner:
                runner.run([random_input(spec) for spec in runner.inputs])

        probe_in_child(first_run, str(path))
    blob = read_model_bytes(path)
    fmt = model_format(path)
    if fmt == "tflite":
        from edgekit.runtime.tflite import TFLiteRunner

        return TFLiteRunner(str(path), threads=threads, target=target, blob=blob)
    from edgekit.runtime.onnx import OnnxRunner

    return OnnxRunner(str(path), threads=threads, target=target, blob=blob)

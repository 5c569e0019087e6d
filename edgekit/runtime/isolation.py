"""Run a first load and inference of a model in a forked child, so a native crash cannot take the caller down.

``edgekit.load(path, isolate=True)`` uses it: the child loads the model and runs it once on generated input;
when a signal ends the child (a LiteRT or ONNX Runtime fault), the caller gets
:class:`~edgekit.errors.InferenceError` naming the signal, and the model is never loaded in its process.
A model that crashes only on some inputs can still crash a later ``run``: the CLI runs every command in a child
for that reason (:func:`edgekit.cli.app.run`).

Example:
    >>> probe_in_child(lambda: None)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from edgekit.errors import EdgekitError, InferenceError

_STATUS_ERROR = 2  # the child raised an edgekit error; its message comes through the pipe


def probe_in_child(probe: Callable[[], object], what: str = "this model") -> None:
    """Call ``probe`` in a forked child; re-raise its edgekit error here, or :class:`InferenceError` on a crash.

    Example:
        >>> probe_in_child(lambda: os.kill(os.getpid(), signal.SIGSEGV), "m.tflite")
        Traceback (most recent call last):
        ...
        edgekit.errors.InferenceError: m.tflite: the runtime crashed on it (SIGSEGV) in an isolated first run; ...
    """
    if not hasattr(os, "fork"):
        probe()  # no fork (Windows): no isolation to give
        return
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        code = 0
        try:
            probe()
        except EdgekitError as exc:
            os.write(write_end, f"{type(exc).__name__}\n{exc}".encode()[:65_000])
            code = _STATUS_ERROR
        except BaseException as exc:
            os.write(write_end, f"InferenceError\n{what}: {type(exc).__name__}: {exc}".encode()[:65_000])
            code = _STATUS_ERROR
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise InferenceError(f"{what}: the runtime crashed on it ({name}) in an isolated first run; not loaded")
    if os.WEXITSTATUS(status) == _STATUS_ERROR:
        kind, _, text = message.partition("\n")
        import edgekit.errors as errors

        raise getattr(errors, kind, InferenceError)(text)

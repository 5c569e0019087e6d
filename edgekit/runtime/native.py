"""Capture what native libraries (LiteRT, Dawn, XNNPACK) write to file descriptor 2.

LiteRT logs through C++ straight to fd 2, bypassing Python's ``sys.stderr``.
The CLI keeps those lines off the terminal and uses them to explain failures
(for example "No adapters found" when a GPU is asked for on a machine without one).

Example:
    >>> with captured_native_stderr() as log:
    ...     pass
    >>> log.text
    ''
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

_LOG_PREFIX = re.compile(r"^(?:ERROR|WARNING|INFO):\s*\[[^\]]*\]\s*")


@dataclass
class NativeLog:
    """Text written to fd 2 while a :func:`captured_native_stderr` block ran."""

    text: str = ""

    def find(self, *needles: str) -> str | None:
        """Return the first logged line that contains any of ``needles``.

        Example:
            >>> NativeLog("a\\nERROR: [gpu.cc:9] No adapters found\\n").find("No adapters")
            'No adapters found'
        """
        for line in self.text.splitlines():
            if any(n in line for n in needles):
                return _LOG_PREFIX.sub("", line.strip())
        return None


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[NativeLog]:
    """Redirect fd 2 into a temporary file for the duration of the block.

    Example:
        >>> with captured_native_stderr() as log:
        ...     _ = os.write(2, b"native says hi\\n")
        >>> "native says hi" in log.text
        True
    """
    log = NativeLog()
    fd = 2
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield log
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            log.text = sink.read().decode("utf-8", "replace")


@contextlib.contextmanager
def native_output_captured(*, passthrough: bool = False) -> Iterator[NativeLog]:
    """Keep native libraries' writes to fd 1 and fd 2 off stdout (and, unless ``passthrough``, the terminal).

    LiteRT, OpenCL and Dawn log straight to the process's file descriptors (the GPU
    accelerator writes ``INFO: Loaded OpenCL library with dlopen.`` to fd 1), which would
    corrupt ``--json`` output. Inside this block fd 1 and fd 2 point at a temporary file
    (``passthrough``: fd 1 points at the real stderr, so native lines stay visible but
    off stdout), and Python's ``sys.stdout`` / ``sys.stderr`` write to the real ones.

    Example:
        >>> with native_output_captured() as log:  # doctest: +SKIP
        ...     _ = os.write(1, b"INFO: native\\n"); print("python")
        python
        >>> log.text  # doctest: +SKIP
        'INFO: native\\n'
    """
    log = NativeLog()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    real_out, real_err = os.dup(1), os.dup(2)
    py_out = os.fdopen(os.dup(real_out), "w", buffering=1, encoding="utf-8", errors="replace")
    py_err = os.fdopen(os.dup(real_err), "w", buffering=1, encoding="utf-8", errors="replace")
    saved_streams = sys.stdout, sys.stderr
    with tempfile.TemporaryFile() as sink:
        target = real_err if passthrough else sink.fileno()
        os.dup2(target, 1)
        os.dup2(target, 2)
        sys.stdout, sys.stderr = py_out, py_err
        try:
            yield log
        finally:
            for stream in (py_out, py_err):
                stream.flush()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(real_out, 1)
            os.dup2(real_err, 2)
            for fd in (real_out, real_err):
                os.close(fd)
            py_out.close()
            py_err.close()
            sink.seek(0)
            log.text = sink.read().decode("utf-8", "replace")

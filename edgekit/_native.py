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

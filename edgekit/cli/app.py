"""The ``edgekit`` click group, its logging set-up and the entry point that turns errors into exit codes.

Every command maps :class:`~edgekit.errors.EdgekitError` to one line on stderr and the error's exit code;
usage errors exit with 2. The commands register themselves on :data:`app` when :mod:`edgekit.cli` imports them.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.logging import RichHandler

from edgekit import __version__
from edgekit.cli.render import err, notice
from edgekit.cli.suggest import unknown_option
from edgekit.errors import EdgekitError
from edgekit.limits import parse_limit, set_limits
from edgekit.runtime.native import native_output_captured

log = logging.getLogger("edgekit")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--limit",
    "limits",
    multiple=True,
    metavar="NAME=N",
    callback=lambda _ctx, _param, values: dict(_parsed_limit(v) for v in values),
    help="Raise a limit on what edgekit reads (image_pixels, input_values, csv_rows, zip_entries, tensor_bytes, "
    "activation_bytes, ...; README: Limits). Repeatable.",
)
def app(verbose: int, limits: dict[str, int]) -> None:
    """edgekit: take Keras models to edge devices (TFLite, ONNX, Edge TPU)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    set_limits(**limits)


def _parsed_limit(text: str) -> tuple[str, int]:
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _silence_native_teardown() -> None:
    """LiteRT logs accelerator teardown on fd 2 after Python exits; keep it off the terminal."""
    try:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
    except OSError:
        pass


def main(argv: list[str] | None = None, *, entry: Callable[..., Any] = app) -> int:
    """Run the CLI; return the exit code instead of raising.

    Example:
        >>> main(["inspect", "missing.tflite"])  # doctest: +SKIP
        2
    """
    atexit.register(_silence_native_teardown)
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("--verbose", "-v", "-vv") for a in args)
    try:
        with native_output_captured(passthrough=verbose) as native:
            code = entry.main(args=args, prog_name="edgekit", standalone_mode=False)
        log.debug("native output: %s", native.text)
    except EdgekitError as exc:
        notice("error", str(exc))
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("edgekit: aborted")
        return 130
    except click.NoSuchOption as exc:
        command = exc.ctx.command if exc.ctx is not None else None
        message = unknown_option(exc.option_name, command, entry) if command is not None else exc.format_message()
        notice("error", message)
        return exc.exit_code
    except click.ClickException as exc:
        notice("error", exc.format_message())
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        notice("internal error", f"{type(exc).__name__}: {exc} (set EDGEKIT_DEBUG=1 for the traceback)")
        return 1
    return code if isinstance(code, int) else 0  # click returns the code of click.exceptions.Exit here


# A native runtime can die on a file no reader foresaw; these signals are its crash, not the user's doing.
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}


def run() -> None:
    """Console-script entry point: the command runs in a child process, so a crash of a native runtime (LiteRT,
    ONNX Runtime, a delegate) is one line and exit 2 rather than a dead process (``EDGEKIT_NO_GUARD=1``: run
    in-process, for a debugger)."""
    if hasattr(os, "fork") and not os.environ.get("EDGEKIT_NO_GUARD"):
        sys.stdout.flush()
        sys.stderr.flush()
        if (child := os.fork()) != 0:
            sys.exit(wait_for_command(child))
    sys.exit(main())


def wait_for_command(child: int) -> int:
    """Wait for the command's process; its exit code, or one line and exit 2 when a signal ended it.

    Ctrl-C reaches the child (the terminal signals the whole process group), which answers it.

    Example:
        >>> wait_for_command(os.getpid())  # doctest: +SKIP
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))
    _, status = os.waitpid(child, 0)
    return exit_code_of(status)


def exit_code_of(status: int) -> int:
    """The exit code the user sees for a command process's wait status (one line on stderr when a signal ended it).

    Example:
        >>> exit_code_of(3 << 8)
        3
    """
    if not os.WIFSIGNALED(status):
        return os.WEXITSTATUS(status)
    number = os.WTERMSIG(status)
    name = signal.Signals(number).name
    if number in CRASH_SIGNALS:
        notice("error", f"the runtime crashed on this model ({name}); the file is not one it can run")
        return 2
    if number == signal.SIGKILL:
        notice("error", "the command was killed (SIGKILL: out of memory, or another process)")
        return 2
    return 128 + number

"""One exception type per kind of failure, each with the exit code the CLI uses.

Library code raises these; the CLI maps them to one line on stderr and the
exit code below. Anything else that escapes is a bug and exits with 1.

Example:
    >>> from edgekit.errors import ModelFormatError
    >>> ModelFormatError("x.tflite: not a TFLite flatbuffer").exit_code
    2
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base class of every error edgekit reports to a user."""

    exit_code: int = 1


class InputError(EdgekitError):
    """A path, option or data file the user gave is wrong (missing, a directory, bad shape)."""

    exit_code = 2


class ModelFormatError(InputError):
    """A model file is not a valid model of its format (bad magic, truncated, garbage)."""


class InferenceError(EdgekitError):
    """The runtime accepted the model but failed to prepare or invoke it."""

    exit_code = 2


class TargetUnavailableError(EdgekitError):
    """A target (GPU, Edge TPU) was asked for strictly and cannot be used here."""

    exit_code = 2


class ConversionError(EdgekitError):
    """A converter failed (it may have crashed in a child process); names the artifact."""

    exit_code = 2


class UnsupportedOpError(ConversionError):
    """The model uses an op the target format cannot express (e.g. no TFLite builtin); names the op."""


class BudgetExceededError(EdgekitError):
    """``validate`` measured every artifact and at least one broke a budget; names each broken budget.

    ``report`` holds the validation report (written before this is raised).
    """

    exit_code = 4
    report: dict | None = None

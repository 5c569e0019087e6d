"""What to say when a command gets an option it does not have: the nearest of its own options, or the commands
that do take it.

click suggests by string similarity alone and over-reaches (``convert --target`` → ``Did you mean --strict?``):
here a suggestion must be within a couple of edits of the mistyped name, and an option that exists on another
command says so instead.

Example:
    >>> nearest("--targt", ["--target", "--threads", "--strict"])
    '--target'
    >>> nearest("--target", ["--strict", "--to"]) is None
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def edits(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (a swap of two neighbours is one edit).

    Example:
        >>> edits("--tagret", "--target")
        1
    """
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def nearest(given: str, options: Iterable[str]) -> str | None:
    """The option within two edits of ``given`` (one for short names), the closest first; None when none is.

    Example:
        >>> nearest("--stram", ["--raw", "--stream", "--threads"])
        '--stream'
    """
    limit = 1 if len(given.lstrip("-")) <= 4 else 2
    scored = sorted((edits(given, o), o) for o in options if o.startswith("--"))
    return scored[0][1] if scored and scored[0][0] <= limit else None


def _options(command: Any) -> list[str]:
    return [o for p in command.params for o in (*p.opts, *p.secondary_opts)]


def unknown_option(name: str, command: Any, group: Any) -> str:
    """One line for ``name`` given to ``command`` (a click command of ``group``), which lacks it.

    Example:
        >>> unknown_option("--target", convert_command, cli_group)  # doctest: +SKIP
        'edgekit convert has no option --target (bench, predict, validate and verify take it)'
    """
    own = _options(command)
    if match := nearest(name, own):
        return f"edgekit {command.name} has no option {name}: did you mean {match}?"
    elsewhere = sorted(n for n, c in getattr(group, "commands", {}).items() if c is not command and name in _options(c))
    if elsewhere:
        takers = ", ".join(elsewhere[:-1]) + (" and " if len(elsewhere) > 1 else "") + elsewhere[-1]
        return f"edgekit {command.name} has no option {name} ({takers} take{'s' if len(elsewhere) == 1 else ''} it)"
    return f"edgekit {command.name} has no option {name} (see edgekit {command.name} --help)"

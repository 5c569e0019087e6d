"""Package attributes imported on first use, so importing a package (or a child process that needs one of
its modules) never pays for the rest.

Example:
    >>> getattr_, names = lazy_exports("edgekit", {"load": "edgekit.runtime"})
    >>> names, getattr_("load").__name__
    (['load'], 'load')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) and returns its ``name``,
    and the ``__all__`` list; use as ``__getattr__, __all__ = lazy_exports(__name__, {...})``.

    Example:
        >>> lazy_exports("edgekit", {})[0]("nothing")
        Traceback (most recent call last):
        ...
        AttributeError: module 'edgekit' has no attribute 'nothing'
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)

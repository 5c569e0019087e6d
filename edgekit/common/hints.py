"""Which command takes a file: the hint a command adds when it is given a file meant for another.

Example:
    >>> taken_by("model.keras")
    'a Keras model: edgekit convert takes it'
    >>> taken_by("notes.txt") is None
    True
"""

from __future__ import annotations

from pathlib import Path

BY_SUFFIX = {
    ".keras": "a Keras model: edgekit convert takes it",
    ".h5": "a Keras model: edgekit convert takes it",
    ".yaml": "a recipe: edgekit run or train takes it",
    ".yml": "a recipe: edgekit run or train takes it",
    ".tflite": "a converted model: edgekit inspect, bench, validate, bundle and predict take it",
    ".onnx": "a converted model: edgekit inspect, bench, validate and predict take it",
    ".zip": "a bundle: edgekit predict and verify take it",
}


def taken_by(path: str | Path) -> str | None:
    """What ``path`` is and which command takes it, from its name and (for folders) what it holds; None when
    it is none of edgekit's files.

    Example:
        >>> taken_by("models/lstm_sunspots.yaml")
        'a recipe: edgekit run or train takes it'
    """
    p = Path(path)
    if p.is_dir():
        if (p / "edgekit.json").is_file():
            return "a bundle: edgekit predict and verify take it"
        if (p / "saved_model.pb").is_file():
            return "a SavedModel: edgekit convert takes it"
        from edgekit.rundir import RunDir

        if RunDir(p).model.is_file() or RunDir(p).manifest.is_file():
            return "a run or convert folder: edgekit convert, validate and bundle take it"
        return None
    return BY_SUFFIX.get(p.suffix.lower())


def with_hint(message: str, path: str | Path, unless: tuple[str, ...] = ()) -> str:
    """``message`` with what ``path`` is and which command takes it, when known and not one of ``unless``
    (suffixes the command itself takes).

    Example:
        >>> with_hint("m.keras: not valid YAML", "m.keras")
        'm.keras: not valid YAML (a Keras model: edgekit convert takes it)'
    """
    hint = taken_by(path)
    return f"{message} ({hint})" if hint and Path(path).suffix.lower() not in unless else message

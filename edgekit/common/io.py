"""Files written safely and named by content: sha256 of files and folders, atomic writes, tool versions.

Example:
    >>> write_json(run_dir / "report.json", {"ok": True})  # doctest: +SKIP
    >>> len(sha256_file(__file__))
    64
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

from edgekit import __version__

TOOLS = (
    "tensorflow",
    "keras",
    "tf-keras",
    "tensorflow-model-optimization",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
    "numpy",
)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> len(sha256_file(__file__))
        64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | Path) -> str:
    """sha256 over a file, or over every file of a folder (relative names and contents, sorted)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    digest = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file() and "__pycache__" not in x.parts):
        digest.update(str(f.relative_to(p)).encode() + b"\0" + sha256_file(f).encode())
    return digest.hexdigest()


def tool_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape an artifact (None where absent)."""
    versions: dict[str, str | None] = {"edgekit": __version__}
    for name in TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now() -> str:
    """UTC timestamp in ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``path`` through ``<name>.part`` and a rename, so readers never see half a file.

    Example:
        >>> write_atomic(run_dir / "model.tflite", blob)  # doctest: +SKIP
    """
    target = Path(path)
    part = target.with_name(target.name + ".part")
    if isinstance(data, str):
        part.write_text(data)
    else:
        part.write_bytes(data)
    part.replace(target)
    return target


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")

"""The one manifest writer and reader: every stage records its run directory in ``manifest.json``.

Example:
    >>> write_manifest(run_dir, {"stage": "convert", "artifacts": []})  # doctest: +SKIP
    >>> read_manifest(run_dir)["stage"]  # doctest: +SKIP
    'convert'
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import tempfile
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.errors import InputError

MANIFEST = "manifest.json"
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


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temporary name, then rename)."""
    return write_json(Path(run_dir) / MANIFEST, manifest)


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The run directory's manifest, or None when it has none."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None


def prepare_run_dir(out: str | Path) -> Path:
    """Create the run directory and its ``.edgekit`` work folder; fail with one line if it is not writable.

    Example:
        >>> prepare_run_dir("/proc/edgekit")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --out /proc/edgekit: not writable (No such file or directory)
    """
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
        (p / ".edgekit").mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p / ".edgekit"):
            pass
    except OSError as exc:
        raise InputError(f"--out {out}: not writable ({exc.strerror or exc})") from None
    return p

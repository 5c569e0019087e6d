"""Open what ``predict`` and ``verify`` are given: a bundle folder, a bundle zip, or a ``.tflite`` file.

A folder or zip must carry a valid ``edgekit.json`` whose files all match their sha256. A bare
``.tflite`` uses the manifest embedded in it by ``edgekit bundle``, else one derived from the
file itself (its inputs, outputs and quantization; a classifier when labels are given).

Example:
    >>> with open_bundle("bundles/coral_rpi.zip") as b:  # doctest: +SKIP
    ...     b.manifest["task"]
    'classifier'
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.common.hints import with_hint
from edgekit.contract import contract_of_file, read_labels, with_kinds
from edgekit.errors import InputError
from edgekit.formats.metadata import read_metadata
from edgekit.formats.tflite import read_tflite
from edgekit.limits import VALUES
from edgekit.rundir import SCHEMA_VERSION, convert_entry
from edgekit.stages.bundle import app
from edgekit.stages.bundle.archive import read_entry, safe_extract
from edgekit.stages.bundle.spec import io_entries, postprocessing, validate_spec, with_run_shapes

app.LIMITS = VALUES  # one set of limits: run.py's own defaults serve it standalone


@dataclass
class OpenBundle:
    """A bundle's manifest, model path and labels; ``close()`` removes an extracted zip."""

    manifest: dict[str, Any]
    model_path: Path
    labels: list[str] | None
    folder: Path | None = None
    signature: str = "unsigned"
    _tmp: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> OpenBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _from_folder(folder: Path, tmp: Any = None, key: str | Path | None = None) -> OpenBundle:
    try:
        signature = app.check_signature(folder, None if key is None else Path(key))  # before trusting the manifest
        manifest = app.load_manifest(folder)
        validate_spec(manifest, str(folder / "edgekit.json"))
        app.check_files(folder, manifest)
        labels = app.read_labels(folder, manifest)
    except app.BundleError as exc:
        raise InputError(str(exc)) from None
    labels_checked(labels, manifest)
    return OpenBundle(manifest, folder / manifest["model"]["file"], labels, folder, signature, tmp)


def labels_checked(labels: list[str] | None, manifest: dict[str, Any]) -> list[str] | None:
    """Refuse labels whose count is not the classifier output's size."""
    if labels is None or manifest["task"] != "classifier":
        return labels
    out = next(o for o in manifest["outputs"] if o["name"] == manifest["postprocessing"]["output"])
    if len(labels) != out["shape"][-1]:
        raise InputError(f"labels: {len(labels)} labels, but output {out['name']!r} has {out['shape'][-1]} values")
    return labels


def derived_manifest(
    path: Path, labels: list[str] | None, output_kind: str | None = None
) -> tuple[dict[str, Any], list[str] | None]:
    """A manifest for a bare ``.tflite``: its embedded one, else derived from its tensors and its contract — the
    convert record's beside it, else what its graph says (:func:`~edgekit.contract.tflite_contract`), with
    ``output_kind`` (``--output-kind``) applied: image normalization, logits, labels, detection / pose /
    segmentation decoding.

    Example:
        >>> derived_manifest(Path("mobilenet_v2_1.0_224_quant.tflite"), None)[0]["task"]  # doctest: +SKIP
        'raw'
    """
    model = read_tflite(path)
    embedded = read_metadata(model)
    if embedded is not None:
        validate_spec({**embedded, "files": {path.name: "0" * 64}}, f"{path} (embedded edgekit metadata)")
        try:
            app.check_references(embedded)
        except app.BundleError as exc:
            raise InputError(f"{path} (embedded edgekit metadata): {exc}") from None
        embedded["model"] = {**embedded["model"], "file": path.name}
        return embedded, labels
    recorded = convert_entry(path)
    contract = with_kinds(contract_of_file(path, model)[0], output_kind)
    inputs, outputs = io_entries(model, None, contract)
    outputs = with_run_shapes(path, outputs)
    if labels is None:
        labels = next((o.labels for o in contract.outputs if o.labels), None)
    task, post = postprocessing(model, outputs, contract, dict((recorded or ({}, {}))[0].get("task") or {}), labels, 5)
    return {
        "schema_version": SCHEMA_VERSION, "platform": "rpi",
        "model": {"file": path.name, "format": "tflite", "precision": "", "edgetpu_compiled": model.edgetpu_compiled},
        "task": task, "inputs": inputs, "outputs": outputs, "postprocessing": post,
        "state": {"recurrent": bool(model.variable_tensors), "reset_before_each_call": bool(model.variable_tensors)},
        "files": {},
    }, labels  # fmt: skip


def _listed(archive: Path) -> set[str] | None:
    """The entries a bundle zip may hold: ``edgekit.json`` and the files it lists (None: no manifest to say)."""
    data = read_entry(archive, "edgekit.json", app.LIMITS["manifest_bytes"])
    if data is None:
        return None  # _from_folder says "no edgekit.json" after a safe extraction
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None  # _from_folder names what is wrong with it
    files = manifest.get("files") if isinstance(manifest, dict) else None
    return {"edgekit.json", app.SIGNATURE_FILE, *files} if isinstance(files, dict) else None


def open_bundle(
    source: str | Path,
    labels: str | Path | None = None,
    key: str | Path | None = None,
    output_kind: str | None = None,
) -> OpenBundle:
    """Open a bundle folder, a bundle zip (extracted safely into a temporary folder) or a ``.tflite``.

    ``key``: a public key (PEM) the bundle must be signed by (:func:`~edgekit.stages.bundle.app.check_signature`).
    ``output_kind`` (``--output-kind [NAME=]KIND``) says what a bare model's outputs hold; a bundle says it
    itself.

    Example:
        >>> open_bundle("photo.jpg")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: photo.jpg: no such file or directory
    """
    p = Path(source)
    if not p.exists():
        raise InputError(f"{source}: no such file or directory")
    if output_kind is not None and p.suffix != ".tflite":
        raise InputError(f"--output-kind: {source} is a bundle, whose edgekit.json says what its outputs hold "
                         "(give it to bundle, or to predict with a bare .tflite)")  # fmt: skip
    if p.is_dir():
        bundle = _from_folder(p, key=key)
    elif p.suffix == ".zip":
        tmp = tempfile.TemporaryDirectory(prefix="edgekit-bundle-")
        try:
            bundle = _from_folder(safe_extract(p, tmp.name, only=_listed(p)), tmp, key)
        except Exception:
            tmp.cleanup()
            raise
    elif p.suffix == ".tflite":
        if key is not None:
            raise InputError(f"{source}: --key checks a signed bundle; a bare model carries no signature")
        label_list = read_labels(labels) if labels is not None else None
        manifest, label_list = derived_manifest(p, label_list, output_kind)
        return OpenBundle(manifest, p, labels_checked(label_list, manifest))
    else:
        raise InputError(with_hint(f"{source}: not a bundle (folder or .zip) nor a .tflite model", source))
    if labels is not None:
        bundle.labels = labels_checked(read_labels(labels), bundle.manifest)
    return bundle

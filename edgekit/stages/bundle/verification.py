"""``edgekit verify``: check a bundle before shipping it, on the device or in CI.

Checks the manifest against its schema and version, every file's sha256, that the labels fit
the classifier output, that the model loads, and that one inference from the manifest's own
input spec gives outputs of the manifest's shapes and dtypes. Any mismatch is one line, exit 2.
A compiled Edge TPU model where no Edge TPU is present gets every check but the inference,
and ``ok: False`` with ``unavailable`` saying why (the CLI exits 3).

Example:
    >>> verify("bundles/digits_rpi")["checks"]  # doctest: +SKIP
    ['schema 1.0.0', 'sha256 of 4 files', 'labels: 5 for 5 outputs', 'model loads', 'one inference: head (1, 5)']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.stages.bundle.loader import open_bundle


def verify(source: str | Path, key: str | Path | None = None, target: str = "cpu") -> dict[str, Any]:
    """Verify a bundle folder or zip; return what was checked.

    ``key``: a public key (PEM) the bundle must be signed by; without one, ``signature`` says whether it is signed.
    ``target="pi"``: also install the bundle's ``requirements.txt`` on the Pi's software stack, run its ``run.py``
    there on a sample and compare with x86 (:func:`~edgekit.stages.bundle.on_pi.verify_on_pi`).

    Example:
        >>> verify("missing_bundle")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing_bundle: no such file or directory
    """
    from edgekit.formats.metadata import read_metadata
    from edgekit.formats.tflite import read_tflite
    from edgekit.runtime import load
    from edgekit.runtime.targets import edgetpu_runtime

    if target not in ("cpu", "pi"):
        raise InputError(f"--target must be cpu or pi, got {target!r}")
    p = Path(source)
    if p.is_file() and p.suffix == ".tflite":
        raise InputError(f"{source}: verify checks a bundle (folder or .zip); a bare model has no manifest to check")
    with open_bundle(source, key=key) as bundle:
        manifest = bundle.manifest
        checks = [f"schema {manifest['schema_version']}", f"sha256 of {len(manifest['files'])} files"]
        if bundle.labels is not None:
            checks.append(f"labels: {len(bundle.labels)} for {len(bundle.labels)} outputs")
        embedded = read_metadata(read_tflite(bundle.model_path))
        if embedded is None or embedded.get("inputs") != manifest["inputs"]:
            raise InputError(f"{bundle.model_path}: its embedded edgekit metadata does not match edgekit.json")
        checks.append("embedded metadata matches edgekit.json")
        if manifest["model"]["edgetpu_compiled"] and not edgetpu_runtime().available:
            unavailable = f"inference: edgetpu {edgetpu_runtime().describe()}"
            return {"bundle": str(source), "ok": False, "checks": checks, "inference": None,
                    "signature": bundle.signature, "unavailable": unavailable}  # fmt: skip
        runtime = "edgetpu" if manifest["model"]["edgetpu_compiled"] else "cpu"
        with load(bundle.model_path, target=runtime) as runner:
            checks.append("model loads")
            feeds = [np.zeros(item["shape"], np.dtype(item["dtype"])) for item in manifest["inputs"]]
            outputs = runner.run(feeds, dequantize_outputs=False)
        shapes = {}
        for item, value in zip(manifest["outputs"], outputs, strict=True):
            if list(value.shape) != item["shape"] or str(value.dtype) != item["dtype"]:
                raise InputError(f"{source}: output {item['name']!r} is {value.dtype} {list(value.shape)}, "
                                 f"the manifest says {item['dtype']} {item['shape']}")  # fmt: skip
            if not np.isfinite(value.astype(np.float64)).all():
                raise InputError(f"{source}: output {item['name']!r} is not finite on the manifest's zero input")
            shapes[item["name"]] = list(value.shape)
        checks.append("one inference: " + ", ".join(f"{k} {v}" for k, v in shapes.items()))
        if target == "pi":
            from edgekit.stages.bundle.on_pi import verify_on_pi
            from edgekit.stages.bundle.prediction import predict

            checks += verify_on_pi(bundle, source, lambda sample: predict(source, [sample], key=key))
    return {"bundle": str(source), "ok": True, "checks": checks, "inference": shapes, "signature": bundle.signature,
            "unavailable": None}  # fmt: skip

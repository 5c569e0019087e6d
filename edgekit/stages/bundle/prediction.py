"""``edgekit predict``: run a bundle or a model on images, ``.npy`` windows or CSV rows.

Preprocessing and post-processing are the bundle's own (``edgekit/bundling/app.py``, shipped as
``run.py``), so a prediction here is what the device app computes. Runtime lane only.

Example:
    >>> results = predict("bundles/coral_rpi", ["cat.bmp"], top_k=3)  # doctest: +SKIP
    >>> results[0]["top"][0]["label"]  # doctest: +SKIP
    'Egyptian cat'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.stages.bundle import app
from edgekit.stages.bundle.loader import open_bundle


def predict(
    source: str | Path,
    inputs: list[str | Path],
    *,
    top_k: int | None = None,
    labels: str | Path | None = None,
    threads: int | None = None,
    key: str | Path | None = None,
) -> list[dict[str, Any]]:
    """One result per input sample: ``{"input", "top": [{label, score, index}]}`` for classifiers,
    ``{"input", "score", "threshold", "anomaly"}`` for anomaly scorers, ``{"input", "values"}`` otherwise.
    ``key``: a public key (PEM) the bundle must be signed by.

    Example:
        >>> predict("model.tflite", ["missing.png"])  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.png: no such file
    """
    from edgekit.runtime import load

    if not inputs:
        raise InputError("predict needs at least one input file")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    with open_bundle(source, labels, key) as bundle:
        manifest = bundle.manifest
        if len(manifest["inputs"]) != 1:
            names = [i["name"] for i in manifest["inputs"]]
            raise InputError(f"{source}: predict takes one-input models; this one has {len(names)} ({names})")
        target = "edgetpu" if manifest["model"]["edgetpu_compiled"] else "cpu"
        with load(bundle.model_path, threads=threads, target=target) as runner:
            results = []
            for path in inputs:
                try:
                    batch = app.read_input(Path(path), manifest["inputs"][0])
                    outputs = dict(zip([s.name for s in runner.outputs], runner.run(batch), strict=True))
                    scored = app.postprocess(outputs, manifest, bundle.labels, top_k)
                except app.BundleError as exc:
                    raise InputError(str(exc)) from None
                results += [{"input": str(path), **r} for r in scored]
    return results

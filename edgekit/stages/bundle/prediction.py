"""``edgekit predict``: run a bundle or a model on images, ``.npy`` windows or CSV rows.

Preprocessing and post-processing are the bundle's own (``edgekit/bundling/app.py``, shipped as
``run.py``), so a prediction here is what the device app computes. Runtime lane only.

Example:
    >>> results = predict("bundles/coral_rpi", ["cat.bmp"], top_k=3)  # doctest: +SKIP
    >>> results[0]["top"][0]["label"]  # doctest: +SKIP
    'Egyptian cat'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.stages.bundle import app
from edgekit.stages.bundle.loader import open_bundle


def predict(
    source: str | Path,
    inputs: str | Path | Sequence[str | Path],
    *,
    top_k: int | None = None,
    labels: str | Path | None = None,
    threads: int | None = None,
    key: str | Path | None = None,
    target: str = "cpu",
    output_kind: str | None = None,
    out_dir: str | Path | None = None,
    draw: str | Path | None = None,
    raw: bool = False,
    stream: bool = False,
) -> list[dict[str, Any]]:
    """One result per input sample: ``{"input", "top": [{label, score, index}]}`` for classifiers,
    ``{"input", "score", "threshold", "anomaly"}`` for anomaly scorers, ``{"input", "values"}`` otherwise.
    ``key``: a public key (PEM) the bundle must be signed by. ``target="pi"``: the bundle's own ``run.py`` on the
    Pi's software stack (:mod:`edgekit.stages.bundle.on_pi`); each result says ``target_used`` and ``emulated``,
    and whether it agrees with the same prediction on this machine (``agrees_with_x86``, ``x86_difference``), as
    ``verify --target pi`` compares them. Detectors give ``detections`` (label, score, box ``[ymin, xmin, ymax,
    xmax]`` normalized to the image), pose models ``keypoints`` (named, x / y normalized, score), segmenters
    ``segmentation`` (each present label's pixel share; with ``out_dir`` a PNG of class ids at the image's
    size). ``draw``: a folder for each photo with its boxes, keypoints or mask drawn on it. ``raw``: every
    output's values as they are (``outputs``), not decoded. ``output_kind``: what a bare model's outputs hold.
    ``stream``: each input is a CSV (or ``.npy``) of rows, each row one timestep of a streaming model (``convert
    --streaming``), the state carried from row to row: one result per row, in order (``row``).

    Example:
        >>> predict("model.tflite", ["missing.png"])  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.png: no such file
    """
    from edgekit.runtime import load

    inputs = [inputs] if isinstance(inputs, str | Path) else list(inputs)  # one path, or several
    if not inputs:
        raise InputError("predict needs at least one input file")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    if target not in ("cpu", "pi"):
        raise InputError(f"--target must be cpu or pi, got {target!r}")
    if target == "pi":
        if output_kind or out_dir or draw or raw:
            raise InputError("--target pi runs the bundle's own run.py: --output-kind, --out-dir, --draw and --raw "
                             "are for --target cpu")  # fmt: skip
        return _predict_on_pi(source, inputs, top_k=top_k, labels=labels, threads=threads, key=key, stream=stream)
    out_dir = out_dir if out_dir is not None or draw is None else draw  # a drawn mask needs the mask file
    with open_bundle(source, labels, key, output_kind) as bundle:
        manifest = bundle.manifest
        if stream:
            return _predict_stream(bundle, inputs, top_k, threads)
        if len(manifest["inputs"]) != 1:
            names = [i["name"] for i in manifest["inputs"]]
            hint = ": a streaming model, use --stream" if app.state_pairs(manifest) else ""
            raise InputError(f"{source}: predict takes one-input models; this one has {len(names)} ({names}){hint}")
        target = "edgetpu" if manifest["model"]["edgetpu_compiled"] else "cpu"
        with load(bundle.model_path, threads=threads, target=target) as runner:
            results = []
            for path in inputs:
                try:
                    batch = app.read_input(Path(path), manifest["inputs"][0])
                    outputs = dict(zip([s.name for s in runner.outputs], runner.run(batch), strict=True))
                    scored = ([{"outputs": {k: v[n].tolist() for k, v in outputs.items()}} for n in range(len(batch))]
                              if raw else app.postprocess(outputs, manifest, bundle.labels, top_k, Path(path),
                                                          None if out_dir is None else Path(out_dir)))  # fmt: skip
                except app.BundleError as exc:
                    raise InputError(str(exc)) from None
                if draw is not None and not raw:
                    from edgekit.stages.bundle.drawing import draw_result

                    for result in scored:
                        result["drawn"] = str(draw_result(Path(path), result, Path(draw)))
                results += [{"input": str(path), **r} for r in scored]
    return results


def _predict_stream(bundle: Any, inputs: list[str | Path], top_k: int | None, threads: int | None) -> list[dict]:
    """``--stream``: the rows of each input through the model one step at a time (the bundle's own stepping)."""
    from edgekit.runtime import load

    manifest, results = bundle.manifest, []
    with load(bundle.model_path, threads=threads) as runner:
        names = [s.name for s in runner.outputs]
        for path in inputs:
            try:
                invoke = lambda f: dict(zip(names, runner.run(f), strict=True))  # noqa: E731
                steps = app.stream(app.read_rows(Path(path)), manifest, invoke, bundle.labels, top_k)
                results += [{"input": str(path), "row": n, **r} for n, r in enumerate(steps)]
            except app.BundleError as exc:
                raise InputError(f"{path}: {exc}") from None
    return results


def _predict_on_pi(source: str | Path, inputs: list[str | Path], **options: Any) -> list[dict[str, Any]]:
    from edgekit.stages.bundle.on_pi import compare, run_on_pi

    with open_bundle(source, options["labels"], options["key"]) as bundle:
        if bundle.folder is None:
            raise InputError(f"{source}: --target pi runs a bundle's own run.py; bundle the model first "
                             "(edgekit bundle MODEL --platform rpi)")  # fmt: skip
        if missing := [str(p) for p in inputs if not Path(p).is_file()]:
            raise InputError(f"{missing[0]}: no such file")
        extra = [*(["--top-k", str(options["top_k"])] if options["top_k"] else []),
                 *(["--threads", str(options["threads"])] if options["threads"] else []),
                 *(["--stream"] if options["stream"] else [])]  # fmt: skip
        results = run_on_pi(bundle, source, [Path(p) for p in inputs], extra)
        manifest = bundle.manifest
    given = {str(Path(p).resolve()): str(p) for p in inputs}  # run.py got absolute paths (it runs in the bundle)
    on_x86 = predict(source, inputs, **{**options, "target": "cpu"})
    for result, x86 in zip(results, on_x86, strict=True):
        result["input"] = given.get(result["input"], result["input"])
        result["agrees_with_x86"], result["x86_difference"] = compare(result, x86, manifest)
    return results

"""The model's contract read from a Keras model and its calibration data (build lane).

Evidence, strongest first: the user's flags (``--input-range``, ``--output-kind``) and the run's recorded task;
the model's own scaling layers (``Rescaling`` / ``Normalization``, found through augmentation layers and models
used as layers); the compiled loss saved with the file (``from_logits=True`` makes a linear output logits); the
calibration data's statistics. A flag that contradicts the model is refused; evidence that disagrees with
itself becomes a one-line warning; a missing fact an image model needs is a note asking for the flag.

Example:
    >>> evidence = scaling_evidence(model)  # doctest: +SKIP
    >>> evidence["image"]["range"]  # doctest: +SKIP
    (0.0, 255.0)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.contract import (
    PIXELS,
    Contract,
    InputContract,
    OutputContract,
    check_kind,
    input_kind,
    parse_named,
    parse_range,
)
from edgekit.errors import InputError

# Layers that leave the value range as it is at inference (augmentation is identity when training=False).
PASS_THROUGH = {
    "InputLayer", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
    "RandomBrightness", "RandomCrop", "RandomHeight", "RandomWidth", "RandomShear", "RandomErasing",
    "RandomGaussianBlur", "RandomSharpness", "RandomPerspective", "RandomColorJitter", "RandomGrayscale",
    "RandomHue", "RandomSaturation", "RandomColorDegeneration", "RandomPosterization", "AutoContrast",
    "AugMix", "RandAugment", "Equalization", "Solarization", "Pipeline", "CenterCrop", "Resizing",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity",
}  # fmt: skip
CANONICAL_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))
CLASS_LOSSES = ("CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
                "CategoricalFocalCrossentropy", "BinaryFocalCrossentropy")  # fmt: skip


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _inner(op: Any) -> Any:
    """The functional graph of a model used as a layer (Sequential keeps it in ``_functional``), else None."""
    inner = getattr(op, "_functional", None) or op
    return inner if hasattr(inner, "_run_through_graph") and getattr(inner, "inputs", None) else None


def _scaling_layer(layer: Any, path: list[str]) -> tuple[Any, list[str]] | None:
    """The first Rescaling / Normalization reached from ``layer`` through range-preserving layers, on one path."""
    # one node per call: a Sequential model calls its layers again each time it is rebuilt
    consumers = list({id(node.operation): node.operation for node in getattr(layer, "_outbound_nodes", [])}.values())
    if len(consumers) != 1:
        return None  # no consumer, or a branch: no single path says what the input is scaled by
    op = consumers[0]
    kind = type(op).__name__
    if kind in ("Rescaling", "Normalization"):
        return op, path
    if kind in PASS_THROUGH:
        return _scaling_layer(op, [*path, op.name])
    inner = _inner(op)
    if inner is not None and len(inner.inputs) == 1:  # a model used as a layer: look inside it
        return _scaling_layer(inner.inputs[0]._keras_history[0], [*path, op.name])
    return None


def _range_of(layer: Any, image: bool) -> tuple[tuple[float, float], str]:
    """The input range a scaling layer expects, and how it was read."""
    if type(layer).__name__ == "Rescaling":
        scale = np.atleast_1d(np.asarray(layer.scale, np.float64))
        offset = float(np.mean(np.atleast_1d(np.asarray(layer.offset, np.float64))))
        target = (-1.0, 1.0) if offset < 0 else (0.0, 1.0)  # Rescaling maps into 0..1, or -1..1 with an offset
        ends = sorted(float((t - offset) / s) for t in target for s in (scale.min(), scale.max()))
        how = f"layer {layer.name!r} (Rescaling ×{float(scale.mean()):.4g}{offset:+g}) maps it to {target[0]:g}..1"
        return (_round(ends[0]), _round(ends[-1])), how
    mean = np.asarray(layer.mean, np.float64).ravel()
    std = np.sqrt(np.asarray(layer.variance, np.float64).ravel())
    if image and mean.min() > 2.0:
        return PIXELS, f"layer {layer.name!r} (Normalization, mean {mean.mean():.4g}) standardizes raw pixels"
    lo, hi = float((mean - 3 * std).min()), float((mean + 3 * std).max())
    return (_round(lo), _round(hi)), f"layer {layer.name!r} (Normalization: mean ± 3 std of what it was adapted on)"


def scaling_evidence(model: Any) -> dict[str, dict[str, Any]]:
    """Per input name: the range its first scaling layer expects (``range``) and how that was read (``how``).

    Example:
        >>> scaling_evidence(model)  # doctest: +SKIP
        {'image': {'range': (0.0, 255.0), 'how': "layer 'rescaling' (Rescaling ×0.003922+0) maps it to 0..1"}}
    """
    from edgekit.converters.source import input_specs

    found = {}
    for spec, tensor in zip(input_specs(model), model.inputs, strict=True):
        history = getattr(tensor, "_keras_history", None)
        hit = _scaling_layer(history[0], []) if history else None
        if hit is not None:
            value_range, how = _range_of(hit[0], image=input_kind(list(spec.shape), str(spec.dtype)) == "image")
            if hit[1]:
                how += f", behind {', '.join(hit[1])}"
            found[spec.name] = {"range": value_range, "how": how}
    return found


def snap(lo: float, hi: float) -> tuple[float, float]:
    """The observed span as a canonical range (0..1, -1..1, 0..255) when it fills most of one, else as observed.

    Example:
        >>> snap(0.0, 0.98), snap(-0.7, 0.9), snap(3.0, 17.0)
        ((0.0, 1.0), (-1.0, 1.0), (3.0, 17.0))
    """
    for a, b in CANONICAL_RANGES:
        tol = 0.01 * (b - a)
        if lo >= a - tol and hi <= b + tol and hi - lo >= 0.5 * (b - a):
            return a, b
    return _round(lo), _round(hi)


def disagree(observed: tuple[float, float], expected: tuple[float, float]) -> bool:
    """Whether an observed span is of another order of magnitude than the expected range, or far outside it.

    Example:
        >>> disagree((0.0, 1.0), (0.0, 255.0)), disagree((0.0, 250.0), (0.0, 255.0))
        (True, False)
    """
    span, want = observed[1] - observed[0], expected[1] - expected[0]
    outside = observed[0] < expected[0] - 0.5 * want or observed[1] > expected[1] + 0.5 * want
    return span < 0.1 * want or span > 10 * want or outside


def flag_ranges(specs: list[Any], text: str | None) -> dict[str, tuple[float, float]]:
    """``--input-range`` per input name; refused on an integer input or a name the model lacks.

    Example:
        >>> flag_ranges(specs, "tokens=0,1")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --input-range: input 'tokens' is int32 (token ids): a value range applies to ...
    """
    given = parse_named(text, "--input-range")
    names = [s.name for s in specs]
    if unknown := [n for n in given if n is not None and n not in names]:
        raise InputError(f"--input-range: the model has no input {unknown[0]!r} (inputs: {', '.join(names)})")
    found = {}
    for spec in specs:
        floating = str(spec.dtype).startswith(("float", "bfloat"))
        if spec.name in given and not floating:
            raise InputError(f"--input-range: input {spec.name!r} is {spec.dtype} (token ids or counts): a value "
                             "range applies to float inputs only")  # fmt: skip
        value = given.get(spec.name, given.get(None))
        if value is not None and floating:
            found[spec.name] = parse_range(value)
    if given and not found:
        kinds = ", ".join(f"{s.name} ({s.dtype})" for s in specs)
        raise InputError(f"--input-range: a value range applies to float inputs only, and the model takes {kinds}")
    return found


def calibration_range(
    spec: Any, layer: dict[str, Any] | None, flag: tuple[float, float] | None, folder: str | None
) -> tuple[float, float] | None:
    """The range image-folder calibration is mapped onto (None: the data is not an image folder).

    An image folder holds 0..255 pixels whatever the model takes, so it is no evidence of the range: the flag
    or the model's scaling layer says where pixels go; with neither, the model is asked about in one line.
    """
    if folder is None:
        return None
    if flag is not None:
        return flag
    if layer is not None:
        return layer["range"]
    raise InputError(
        f"--calib {folder}: an image folder gives 0..255 pixels, but input {spec.name!r} has no scaling layer to say "
        "what range the model takes: pass --input-range 0,1 (or -1,1, or 0,255)"
    )


def input_contracts(
    specs: list[Any],
    layers: dict[str, dict[str, Any]],
    flags: dict[str, tuple[float, float]],
    observed: dict[str, dict[str, float]] | None,
    folder: str | None,
) -> tuple[list[InputContract], list[str], list[str]]:
    """Each input's contract, the warnings (evidence that disagrees) and the notes (facts missing)."""
    inputs, warnings, notes = [], [], []
    for spec in specs:
        shape, dtype = tuple(spec.shape), str(spec.dtype)
        kind = input_kind(list(shape), dtype)
        layer, flag, seen = layers.get(spec.name), flags.get(spec.name), (observed or {}).get(spec.name)
        span = (seen["min"], seen["max"]) if seen and folder is None else None
        value_range, source = None, "unknown"
        if flag is not None:
            if layer is not None and disagree(flag, layer["range"]):
                raise InputError(
                    f"--input-range {flag[0]:g},{flag[1]:g} contradicts the model: {layer['how']}, so input "
                    f"{spec.name!r} takes {layer['range'][0]:g}..{layer['range'][1]:g}"
                )
            if span is not None and disagree(span, flag):
                raise InputError(
                    f"--input-range {flag[0]:g},{flag[1]:g} for input {spec.name!r}, but the calibration data spans "
                    f"{span[0]:g}..{span[1]:g}: give data in the range the model takes"
                )
            value_range, source = flag, "--input-range"
        elif layer is not None:
            value_range, source = layer["range"], layer["how"]
            if span is not None and disagree(span, layer["range"]):
                warnings.append(
                    f"calibration input {spec.name!r} spans {span[0]:g}..{span[1]:g} but {layer['how']}, so it takes "
                    f"{value_range[0]:g}..{value_range[1]:g}: pass unscaled data, or the int8 ranges will not match "
                    "real inputs"
                )
        elif span is not None and kind != "tokens":
            value_range, source = snap(*span), f"the calibration data (spans {span[0]:.4g}..{span[1]:.4g})"
        elif kind == "image":
            notes.append(f"input {spec.name!r}: no scaling layer and no calibration data say what range it takes "
                         "(give --input-range 0,1, -1,1 or 0,255)")  # fmt: skip
        if folder is not None and value_range is not None and flag is None:
            source += "; the calibration folder's pixels mapped onto it"
        image = kind == "image"
        inputs.append(InputContract(
            spec.name, kind, dtype, list(shape), value_range, source,
            color=("RGB" if shape[-1] == 3 else "L") if image else None, layout="NHWC" if image else None,
        ))  # fmt: skip
    return inputs, warnings, notes


def compiled_losses(path: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The loss each output was compiled with, from the file's saved compile config (``.keras`` / ``.h5``).

    Example:
        >>> compiled_losses("tutorial.keras", ["dense_1"])  # doctest: +SKIP
        {'dense_1': {'class_name': 'SparseCategoricalCrossentropy', 'config': {'from_logits': True, ...}}}
    """
    p = Path(path)
    config: Any = None
    try:
        if p.suffix == ".keras":
            with zipfile.ZipFile(p) as archive:
                config = (json.loads(archive.read("config.json")).get("compile_config") or {}).get("loss")
        elif p.suffix == ".h5":
            import h5py

            with h5py.File(p, "r") as f:
                raw = f.attrs.get("training_config")
                config = json.loads(raw).get("loss") if raw else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    if isinstance(config, dict) and config.get("class_name") is None and set(config) & set(names):
        return {n: _loss(config.get(n)) for n in names if config.get(n) is not None}
    if isinstance(config, list):
        return {n: _loss(c) for n, c in zip(names, config, strict=False) if c is not None}
    return {n: _loss(config) for n in names} if config is not None else {}


def _loss(config: Any) -> dict[str, Any]:
    if isinstance(config, str):  # "sparse_categorical_crossentropy": from_logits defaults to False
        name = "".join(part.capitalize() for part in config.split("_"))
        return {"class_name": name, "config": {}}
    if isinstance(config, dict) and isinstance(config.get("config"), dict) and "class_name" in config:
        return {"class_name": str(config["class_name"]), "config": config["config"]}
    return {"class_name": str(config), "config": {}}


def _given_kind(name: str, given: dict[str | None, str], shape: tuple, dtype: str, outputs: int) -> str | None:
    kind = given.get(name, given.get(None))
    return None if kind is None else check_kind(kind, name, list(shape), dtype, outputs)


def output_contracts(
    model: Any, names: list[str], losses: dict[str, dict[str, Any]], text: str | None, run_task: dict[str, Any]
) -> tuple[list[OutputContract], list[str]]:
    """Each output's kind and why (flags, then the run's task, then activation and compiled loss), and notes."""
    from edgekit.converters.source import _output_activation

    given = parse_named(text, "--output-kind")
    if unknown := [n for n in given if n is not None and n not in names]:
        raise InputError(f"--output-kind: the model has no output {unknown[0]!r} (outputs: {', '.join(names)})")
    outputs, notes = [], []
    reconstruction = len(model.inputs) == 1 and len(names) == 1 and (
        tuple(model.inputs[0].shape[1:]) == tuple(model.outputs[0].shape[1:]))  # fmt: skip
    for i, name in enumerate(names):
        shape, dtype = tuple(model.outputs[i].shape), str(model.outputs[i].dtype)
        activation = _output_activation(model, i)
        units = shape[-1] if len(shape) >= 2 else 1
        loss = losses.get(name)
        from_logits = bool(loss and loss["class_name"] in CLASS_LOSSES and loss["config"].get("from_logits"))
        kind = _given_kind(name, given, shape, dtype, len(names))
        if kind is not None:
            why = "given with --output-kind"
        elif run_task.get("type") == "anomaly_scorer":
            kind, why = "score", "recorded by the run directory (anomaly scorer: the score and its threshold)"
        elif dtype.startswith(("int", "uint")):
            kind, why = "regression", f"{dtype} output (compared exactly)"
        elif activation == "softmax" and units and units > 1:
            kind, why = "probabilities", f"softmax over {units} classes"
        elif activation == "sigmoid" and len(shape) == 2:
            kind, why = "probabilities", f"sigmoid over {units} unit(s)"
        elif from_logits and len(shape) == 2 and activation in ("", "linear"):
            kind, why = "logits", f"linear output, compiled with {loss['class_name']}(from_logits=True)"
        elif reconstruction:
            kind, why = "regression", "reconstruction (output shape equals input shape)"
        else:
            kind = "regression"
            why = f"{activation or 'no'} activation" + (f", compiled with {loss['class_name']}" if loss else "")
            if loss and loss["class_name"] in CLASS_LOSSES:
                notes.append(f"output {name!r} was trained with {loss['class_name']} without from_logits but ends in "
                             f"a {activation or 'linear'} activation: say what it is with --output-kind")  # fmt: skip
            elif not loss and len(shape) == 2 and units and units > 1 and not run_task:
                notes.append(f"output {name!r} is linear with {units} units and no compiled loss says what it holds: "
                             "scored as regression; if these are logits pass --output-kind logits")  # fmt: skip
        outputs.append(OutputContract(name, kind, why, list(shape)))
    labels = run_task.get("labels")
    classes = [o for o in outputs if o.classes]
    if labels and len(classes) == 1 and (classes[0].shape or [None])[-1] in (None, len(labels)):
        classes[0].labels, classes[0].labels_source = [str(x) for x in labels], "the run's training data"
    return outputs, notes


@dataclass
class ContractEvidence:
    """What the model and the flags say before the calibration data is read; :meth:`contract` finishes it."""

    specs: list[Any]
    layers: dict[str, dict[str, Any]]
    flags: dict[str, tuple[float, float]]
    outputs: list[OutputContract]
    notes: list[str]

    @classmethod
    def read(cls, model: Any, specs: list[Any], job: dict[str, Any]) -> ContractEvidence:
        """The evidence of a worker job: scaling layers, ``input_range`` / ``output_kind`` flags, compiled loss.

        Example:
            >>> ContractEvidence.read(model, input_specs(model), job).layers  # doctest: +SKIP
            {'image': {'range': (0.0, 255.0), 'how': "layer 'rescaling' (Rescaling ×0.003922+0) maps it to 0..1"}}
        """
        from edgekit.converters.source import output_names

        names = output_names(model)
        losses = compiled_losses(job["source"], names)
        outputs, notes = output_contracts(model, names, losses, job.get("output_kind"), job.get("run_task") or {})
        return cls(specs, scaling_evidence(model), flag_ranges(specs, job.get("input_range")), outputs, notes)

    def folder_range(self, spec: Any, folder: str | None) -> tuple[float, float] | None:
        """Where an image folder's pixels go for ``spec`` (None: not a folder); see :func:`calibration_range`."""
        return calibration_range(spec, self.layers.get(spec.name), self.flags.get(spec.name), folder)

    def contract(self, observed: dict[str, dict[str, float]] | None, folder: str | None) -> tuple[Contract, list[str]]:
        """The finished contract, given the calibration data's ranges, and the warnings it raised.

        Example:
            >>> contract, warnings = evidence.contract({"image": {"min": 0.0, "max": 1.0}}, None)  # doctest: +SKIP
        """
        inputs, warnings, notes = input_contracts(self.specs, self.layers, self.flags, observed, folder)
        return Contract(inputs, self.outputs, notes + self.notes), warnings


def parity_kinds(contract: Contract, model: Any) -> dict[str, tuple[str, str]]:
    """How each output is compared and scored, from its contract kind: class scores with several classes are a
    classifier's (top-1), one probability a binary classifier's, anything else a regressor's.

    Example:
        >>> parity_kinds(Contract([], [OutputContract("y", "logits", "from_logits")]), model)  # doctest: +SKIP
        {'y': ('classifier', 'from_logits')}
    """
    kinds = {}
    for i, out in enumerate(contract.outputs):
        units = model.outputs[i].shape[-1]
        if out.classes and units and units > 1:
            kinds[out.name] = ("classifier", out.why)
        elif out.kind == "probabilities":
            kinds[out.name] = ("binary-classifier", out.why)
        else:
            kinds[out.name] = ("regressor", out.why)
    return kinds

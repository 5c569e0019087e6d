"""The model's contract: what goes in, what comes out, and what it means.

A tensor is not a deployment. ``convert`` builds one :class:`Contract` from the evidence (the Keras model's
own scaling layers, the calibration data's statistics, the compiled loss, the user's flags or recipe) and
writes it into its record (``contract``); every later stage *reads* it — never re-guesses it: ``bundle``
derives an image's normalization and the labels from it, ``validate`` maps image folders to labels by name,
``predict`` soft-maxes logits. Where the evidence is missing or disagrees, the contract says so in
``notes`` and the stage that needs the fact asks for it in one line.

For each input: ``kind`` (image, audio, series, features, tokens, text, state), dtype, shape (``None`` for a
dynamic dim) and the **value range in model space** (the values the model's input tensor takes: 0..255 when a
``Rescaling(1/255)`` sits inside the model, 0..1 when it was trained on scaled pixels), with where that came
from; for images also colour and layout. For each output: ``kind`` (probabilities, logits, regression, score,
detection, keypoints, segmentation, state), why, and its labels.

Runtime lane: numpy only (the inference from Keras layers is build-lane code in ``edgekit.converters.contract``).

Example:
    >>> c = Contract.from_dict({"inputs": [{"name": "image", "kind": "image", "dtype": "float32",
    ...     "shape": [None, 96, 96, 3], "range": [0.0, 1.0], "range_source": "calibration data"}],
    ...     "outputs": [{"name": "probs", "kind": "probabilities", "why": "softmax over 3 classes"}]})
    >>> image_normalization(c.inputs[0].range)
    {'mean': [0.0, 0.0, 0.0], 'std': [255.0, 255.0, 255.0]}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError

INPUT_KINDS = ("image", "audio", "series", "features", "tokens", "text", "state")
OUTPUT_KINDS = ("probabilities", "logits", "regression", "score", "detection", "keypoints", "segmentation", "state")
# The kinds whose values are class scores: metrics, budgets and top-k treat both as a classifier's.
CLASS_KINDS = ("probabilities", "logits")
PIXELS = (0.0, 255.0)  # what an image file holds, and what image folders load as


@dataclass
class InputContract:
    """One input: kind, dtype, shape, the value range the model takes, and where that range came from."""

    name: str
    kind: str
    dtype: str
    shape: list[int | None]
    range: tuple[float, float] | None = None
    range_source: str = "unknown"
    color: str | None = None
    layout: str | None = None


@dataclass
class OutputContract:
    """One output: what its values mean (``kind``), why edgekit says so, its labels and their source."""

    name: str
    kind: str
    why: str = ""
    shape: list[int | None] | None = None
    labels: list[str] | None = None
    labels_source: str | None = None
    role: str | None = None  # a part of a task's output: boxes / classes / scores / count, class_ids

    @property
    def classes(self) -> bool:
        """Whether the values are class scores (probabilities or logits)."""
        return self.kind in CLASS_KINDS


@dataclass
class Contract:
    """The inputs and outputs of one model, and the facts that are missing (``notes``)."""

    inputs: list[InputContract]
    outputs: list[OutputContract]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        """Read a contract from a record's ``contract`` (unknown keys are refused as a bad record).

        Example:
            >>> Contract.from_dict({"inputs": [], "outputs": [{"name": "y", "kind": "regression"}]}).outputs[0].kind
            'regression'
        """
        try:
            inputs = [
                InputContract(**{**i, "range": tuple(i["range"]) if i.get("range") else None}) for i in data["inputs"]
            ]
            outputs = [OutputContract(**o) for o in data["outputs"]]
        except (KeyError, TypeError) as exc:
            raise InputError(f"the record's contract is malformed ({exc})") from None
        return cls(inputs, outputs, list(data.get("notes", [])))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written into records.

        Example:
            >>> Contract([], [OutputContract("y", "logits")]).to_dict()["outputs"][0]["kind"]
            'logits'
        """
        out = dataclasses.asdict(self)
        for item in out["inputs"]:
            item["range"] = list(item["range"]) if item["range"] else None
        return out

    def output(self, name: str) -> OutputContract | None:
        """The output named ``name``, if the contract has it."""
        return next((o for o in self.outputs if o.name == name), None)

    def input(self, name: str) -> InputContract | None:
        """The input named ``name``, if the contract has it."""
        return next((i for i in self.inputs if i.name == name), None)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """One row per input and output for the printed table: (``in``/``out``, name, kind, what it means).

        Example:
            >>> Contract([], [OutputContract("y", "logits", "compiled loss from_logits=True")]).rows()
            [('out', 'y', 'logits', 'compiled loss from_logits=True')]
        """
        rows = []
        for i in self.inputs:
            span = f"{i.range[0]:g}..{i.range[1]:g}" if i.range else "range unknown"
            extra = f", {i.color} {i.layout}" if i.color else ""
            rows.append(("in", i.name, i.kind, f"{i.dtype} {_shape(i.shape)}{extra}, {span} ({i.range_source})"))
        for o in self.outputs:
            labels = f"; {len(o.labels)} labels ({o.labels_source})" if o.labels else ""
            rows.append(("out", o.name, o.kind, f"{o.why}{labels}"))
        return rows


def _shape(shape: list[int | None]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)


def parse_named(text: str | None, what: str) -> dict[str | None, str]:
    """``[NAME=]VALUE`` items separated by ``;`` into ``{name or None: value}`` (None: every input / output).

    Example:
        >>> parse_named("0,1", "--input-range")
        {None: '0,1'}
        >>> parse_named("image=0,1;mask=0,255", "--input-range")
        {'image': '0,1', 'mask': '0,255'}
    """
    found: dict[str | None, str] = {}
    for item in (part.strip() for part in (text or "").split(";") if part.strip()):
        name, _, value = item.rpartition("=")
        if not value:
            raise InputError(f"{what}: {item!r} has no value (give [NAME=]VALUE)")
        found[name.strip() or None] = value.strip()
    return found


def parse_shape(text: str, what: str = "--input-shape") -> tuple[int, ...]:
    """``"1x128"`` as a shape of positive sizes, the batch first.

    Example:
        >>> parse_shape("1x128")
        (1, 128)
        >>> parse_shape("1x?")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --input-shape: '1x?' is not a shape of sizes (e.g. 1x128)
    """
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise InputError(f"{what}: {text!r} is not a shape of sizes (e.g. 1x128)")
    return shape


def parse_range(text: str, what: str = "--input-range") -> tuple[float, float]:
    """``"LO,HI"`` as two floats, LO < HI.

    Example:
        >>> parse_range("-1,1")
        (-1.0, 1.0)
        >>> parse_range("1,0")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --input-range: '1,0' must be LO,HI with LO < HI (e.g. 0,1 or 0,255)
    """
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"{what}: {text!r} must be LO,HI with LO < HI (e.g. 0,1 or 0,255)")
    return lo, hi


def image_normalization(value_range: tuple[float, float] | None, channels: int = 3) -> dict[str, list[float]]:
    """``mean`` / ``std`` that map 0..255 pixels onto ``value_range`` as ``(pixel - mean) / std``.

    Example:
        >>> image_normalization((-1.0, 1.0), 1)
        {'mean': [127.5], 'std': [127.5]}
    """
    lo, hi = value_range or PIXELS
    std = (PIXELS[1] - PIXELS[0]) / (hi - lo)
    mean = PIXELS[0] - lo * std
    return {"mean": [float(mean)] * channels, "std": [float(std)] * channels}


def pixels_to_range(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """0..255 pixels mapped linearly onto ``value_range`` (float32).

    Example:
        >>> pixels_to_range(np.array([0.0, 255.0]), (0.0, 1.0)).tolist()
        [0.0, 1.0]
    """
    lo, hi = value_range
    return (np.asarray(images, np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(np.float32)


def read_labels(path: str | Path) -> list[str]:
    """A labels file: one label per line (the whole line: Coral's labels carry synonyms), UTF-8.

    Example:
        >>> read_labels("missing.txt")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.txt: no such labels file
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such labels file")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: labels must be UTF-8 text, one per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{path}: no labels in it")
    return lines


def with_labels(contract: Contract, labels: list[str], source: str) -> Contract:
    """The contract with ``labels`` on its one class output (refused where no output is one, or sizes differ).

    Example:
        >>> c = Contract([], [OutputContract("p", "probabilities", shape=[None, 3])])
        >>> with_labels(c, ["a", "b", "c"], "f.txt").outputs[0].labels
        ['a', 'b', 'c']
        >>> with_labels(c, ["a"], "f.txt")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: f.txt: 1 labels, but output 'p' has 3 classes
    """
    classes = [o for o in contract.outputs if o.classes]
    if len(classes) != 1:
        kinds = ", ".join(f"{o.name} ({o.kind})" for o in contract.outputs)
        raise InputError(
            f"--labels: labels name the classes of one classifier output, and this model has {kinds} "
            "(say which output holds classes with --output-kind NAME=logits or probabilities)"
        )
    out = classes[0]
    size = (out.shape or [None])[-1]
    if size not in (None, len(labels)):
        raise InputError(f"{source}: {len(labels)} labels, but output {out.name!r} has {size} classes")
    labelled = [
        dataclasses.replace(o, labels=labels, labels_source=source) if o is out else o for o in contract.outputs
    ]
    return dataclasses.replace(contract, outputs=labelled)


def input_kind(shape: list[int | None], dtype: str) -> str:
    """An input's kind from its shape and dtype alone (what a file says without a record).

    Example:
        >>> input_kind([1, 224, 224, 3], "uint8"), input_kind([1, 128], "int32"), input_kind([1, 24, 1], "float32")
        ('image', 'tokens', 'series')
    """
    image = len(shape) == 4 and shape[-1] in (1, 3)
    if dtype == "string":
        return "text"
    if dtype.startswith(("int", "uint")) and not image:
        return "tokens"
    return "image" if image else {3: "series"}.get(len(shape), "features")


def file_contract(
    inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], graph: dict[int, tuple[str, str, str | None]]
) -> Contract:
    """What a model file alone says of its contract (no convert record beside it): input kinds, a uint8 image's
    0..255 pixels, and the output kinds its graph shows (``graph``: index → kind, why, role); the rest is unknown
    and said so in ``notes``.

    Example:
        >>> softmax = {0: ("probabilities", "SOFTMAX", None)}
        >>> c = file_contract([{"name": "x", "shape": [1, 8, 8, 3], "dtype": "uint8"}],
        ...                   [{"name": "p", "shape": [1, 10], "dtype": "uint8"}], softmax)
        >>> c.inputs[0].range, c.outputs[0].kind
        ((0.0, 255.0), 'probabilities')
    """
    ins, notes = [], []
    for item in inputs:
        kind = input_kind(item["shape"], item["dtype"])
        raw = kind == "image" and item["dtype"] == "uint8"
        ins.append(InputContract(
            item["name"], kind, item["dtype"], list(item["shape"]), PIXELS if raw else None,
            "uint8 image input: pixels as they are" if raw else "unknown",
            color=("RGB" if item["shape"][-1] == 3 else "L") if kind == "image" else None,
            layout="NHWC" if kind == "image" else None,
        ))  # fmt: skip
        if kind == "image" and not raw:
            notes.append(f"input {item['name']!r}: the file does not say what range it takes")
    outs = []
    for index, item in enumerate(outputs):
        kind, why, role = graph.get(index, ("unknown", "no convert record, and the graph does not say", None))
        outs.append(OutputContract(item["name"], kind, why, list(item["shape"]), role=role))
        if kind == "unknown":
            notes.append(f"output {item['name']!r}: the file does not say what it holds (give --output-kind)")
    return Contract(ins, outs, notes)


def contract_of_file(path: str | Path, model: Any) -> tuple[Contract, str]:
    """A ``.tflite`` file's contract and where it came from: the convert record beside the file when it lists the
    file, else what the file's graph says (:func:`tflite_contract`).

    Example:
        >>> contract_of_file("runs/m/m_int8.tflite", read_tflite("runs/m/m_int8.tflite"))[1]  # doctest: +SKIP
        'runs/m/manifest.json'
    """
    from edgekit.rundir import RunDir, convert_entry

    recorded = convert_entry(path)
    if recorded and recorded[0].get("contract"):
        return Contract.from_dict(recorded[0]["contract"]), str(RunDir(Path(path).parent).manifest)
    return tflite_contract(model), "the file alone"


def tflite_contract(model: Any) -> Contract:
    """:func:`file_contract` of a parsed TFLite model (its signature I/O and its graph's evidence).

    Example:
        >>> tflite_contract(read_tflite("deeplabv3_mnv2_dm05_pascal_quant.tflite")).outputs[0].kind  # doctest: +SKIP
        'segmentation'
    """
    from edgekit.formats.tflite import graph_output_kinds
    from edgekit.runtime.tflite import io_specs

    ins, outs = io_specs(model)
    return file_contract([s.to_dict() for s in ins], [s.to_dict() for s in outs], graph_output_kinds(model))


def check_kind(kind: str, name: str, shape: list[int | None], dtype: str, outputs: int) -> str:
    """Refuse an output kind its tensor cannot hold (one line naming the flag); return it.

    Example:
        >>> check_kind("keypoints", "y", [1, 1, 17, 3], "float32", 1)
        'keypoints'
        >>> check_kind("detection", "y", [1, 10], "float32", 1)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.InputError: --output-kind detection: 'y' is the model's only output
    """
    if kind not in OUTPUT_KINDS:
        raise InputError(f"--output-kind: {kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
    integer = dtype.startswith(("int", "uint"))
    if kind == "detection" and outputs < 2:
        raise InputError(f"--output-kind detection: {name!r} is the model's only output; detection needs boxes and "
                         "scores (two or more outputs)")  # fmt: skip
    if kind in CLASS_KINDS and (len(shape) < 2 or (integer and dtype not in ("int8", "uint8"))):
        raise InputError(f"--output-kind {kind}: output {name!r} is {dtype} {list(shape)}, not a vector of class "
                         "scores")  # fmt: skip
    if kind == "segmentation" and len(shape) not in (3, 4):
        raise InputError(f"--output-kind segmentation: output {name!r} has shape {list(shape)}, not a map "
                         "(batch, height, width[, classes])")  # fmt: skip
    if kind == "keypoints" and (shape[-1] or 0) not in (2, 3):
        raise InputError(f"--output-kind keypoints: output {name!r} has shape {list(shape)}; keypoints need "
                         "(y, x[, score]) per point in the last dimension")  # fmt: skip
    return kind


def with_kinds(contract: Contract, text: str | None) -> Contract:
    """The contract with ``--output-kind [NAME=]KIND`` applied (checked against each output's tensor).

    Example:
        >>> c = Contract([], [OutputContract("y", "unknown", shape=[1, 1, 17, 3])])
        >>> with_kinds(c, "keypoints").outputs[0].kind
        'keypoints'
    """
    given = parse_named(text, "--output-kind")
    names = [o.name for o in contract.outputs]
    if unknown := [n for n in given if n is not None and n not in names]:
        raise InputError(f"--output-kind: the model has no output {unknown[0]!r} (outputs: {', '.join(names)})")
    outs = []
    for o in contract.outputs:
        kind = given.get(o.name, given.get(None))
        if kind is None:
            outs.append(o)
            continue
        check_kind(kind, o.name, list(o.shape or []), "float32", len(contract.outputs))
        outs.append(dataclasses.replace(o, kind=kind, why="given with --output-kind"))
    return dataclasses.replace(contract, outputs=outs)

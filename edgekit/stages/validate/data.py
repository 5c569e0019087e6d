"""Labelled data for ``edgekit validate``, read without TensorFlow and checked against the model's inputs.

Forms (the ones ``convert --calib`` takes, with labels):

- a run directory: its held-out ``test.npz``;
- ``.npz``: ``x`` and ``y`` (one input, one output), or ``x:<input name>`` /
  ``y:<output name>`` for several; without any ``y`` only agreement and latency are measured;
- ``.npy``: inputs only (no labels);
- an image folder with one sub-folder per class: images resized to the model's input (and mapped onto
  the range its contract says it takes), labels = the sub-folder names' positions among the model's labels
  (by sorted position where it has none);
- ``.csv`` with a header row: the last columns (as many as the model takes per step) cut into windows of
  the model's length; the label is the next value of the last column (a forecaster's target).

Example:
    >>> data = load_labelled("runs/demo/mobilenet_digits", inputs, outputs)  # doctest: +SKIP
    >>> data.n, sorted(data.y)  # doctest: +SKIP
    (224, ['head'])
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.readers import read_arrays
from edgekit.contract import PIXELS, Contract, pixels_to_range
from edgekit.errors import InputError
from edgekit.rundir import RunDir
from edgekit.runtime.base import format_shape
from edgekit.runtime.specs import TensorSpec


@dataclass(frozen=True)
class InputsFile:
    """Where a measuring process reads the inputs: an ``.npz`` and, in the model's order, (input name, key).

    Example:
        >>> InputsFile("test.npz", [("image", "x")]).read()["image"].shape  # doctest: +SKIP
        (224, 8, 8, 1)
    """

    path: str
    keys: list[tuple[str, str]]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputsFile:
        """The inverse of ``dataclasses.asdict`` (how a measuring process receives it as JSON)."""
        return cls(d["path"], [(name, key) for name, key in d["keys"]])

    def read(self) -> dict[str, np.ndarray]:
        """The arrays by input name, in the model's order (memory-mapped where the ``.npz`` stores them raw)."""
        return {name: npz_array(Path(self.path), key) for name, key in self.keys}

    def feeds(self, names: list[str]) -> list[np.ndarray]:
        """The arrays for a model whose inputs are ``names``: by name where they match, else in order
        (another file of the same model may name its inputs differently).

        Example:
            >>> InputsFile("test.npz", [("image", "x")]).feeds(["serving_default_image:0"])[0].shape  # doctest: +SKIP
            (224, 8, 8, 1)
        """
        arrays = self.read()
        return [arrays[n] for n in names] if set(names) == set(arrays) else list(arrays.values())


def npz_array(path: Path, key: str) -> np.ndarray:
    """One array of an ``.npz``: memory-mapped when stored uncompressed (``np.savez``), else read.

    A validation run reads each sample once, row by row; mapping the file keeps a 1,000-image set
    (150 MB) off the heap and costs nothing until a row is touched.

    Example:
        >>> npz_array(Path("test.npz"), "x").shape  # doctest: +SKIP
        (224, 8, 8, 1)
    """
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{key}.npy")
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            offset = f.tell()
        if not dtype.hasobject and int(np.prod(shape)) > 0:
            return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)
    with np.load(path, allow_pickle=False) as f:
        return f[key]


@dataclass
class LabelledData:
    """Inputs by model input name, labels by output name (None: unlabelled), and where they came from."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray] | None
    source: str
    info: dict[str, Any] = field(default_factory=dict)
    origin: InputsFile | None = None  # the user's .npz holds the inputs as they are: no copy needed

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(next(iter(self.x.values())))

    def inputs_file(self, work: Path) -> InputsFile:
        """The user's ``.npz`` where it holds the inputs as they are, else a copy written into ``work``.

        Example:
            >>> data.inputs_file(Path("work")).keys  # doctest: +SKIP
            [('image', 'x')]
        """
        if self.origin is not None:
            return self.origin
        np.savez(work / "inputs.npz", **{f"x:{k}": v for k, v in self.x.items()})
        return InputsFile(str(work / "inputs.npz"), [(k, f"x:{k}") for k in self.x])


def _keys_by_name(files: list[str], prefix: str, specs: list[TensorSpec], source: str) -> dict[str, str]:
    """Model name → array key: ``x`` / ``y`` for a single input / output, else ``x:<name>`` / ``y:<name>``."""
    named = {k.split(":", 1)[1]: k for k in files if k.startswith(prefix + ":")}
    names = [s.name for s in specs]
    if prefix in files and not named:
        if len(specs) != 1:
            what = "inputs" if prefix == "x" else "outputs"
            raise InputError(f"{source}: the model has {len(specs)} {what} {names}: name them {prefix}:<name>")
        return {names[0]: prefix}
    unknown = sorted(set(named) - set(names))
    missing = [n for n in names if n not in named]
    if unknown or (missing and prefix == "x"):
        raise InputError(f"{source}: {prefix}:<name> arrays must match the model's {names}; unknown {unknown}")
    return {n: named[n] for n in names if n in named}


def _npz(path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> tuple[dict, dict | None, InputsFile]:
    try:
        f = read_arrays(path)
        files = list(f.files)
        if not any(k == "x" or k.startswith("x:") for k in files):
            raise InputError(f"{path}: no inputs (arrays named x or x:<input name>; found {sorted(files)})")
        x_keys = _keys_by_name(files, "x", inputs, str(path))
        has_y = any(k == "y" or k.startswith("y:") for k in files)
        y_keys = _keys_by_name(files, "y", outputs, str(path)) if has_y else None
        y = {name: f[key] for name, key in y_keys.items()} if y_keys is not None else None
        x = {name: npz_array(path, key) for name, key in x_keys.items()}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
    return x, y, InputsFile(str(path), list(x_keys.items()))


def _class_index(folder: Path, classes: list[str], contract: Contract | None) -> tuple[dict[str, int], str]:
    """Each sub-folder's class index: by name among the model's labels when the contract has them (a missing
    class is fine; a folder that is no label is refused), else by sorted position."""
    labels = next((o.labels for o in (contract.outputs if contract else []) if o.labels), None)
    if not labels:
        return {name: i for i, name in enumerate(classes)}, "sorted position (the model has no labels)"
    position = {label: i for i, label in enumerate(labels)}
    if unknown := [name for name in classes if name not in position]:
        shown = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
        raise InputError(f"{folder}: sub-folder {unknown[0]!r} is not one of the model's {len(labels)} labels "
                         f"({shown}): name class folders after the labels")  # fmt: skip
    return {name: position[name] for name in classes}, "label name"


def _image_folder(folder: Path, spec: TensorSpec, contract: Contract | None) -> tuple[dict, dict, dict]:
    from edgekit.common.readers import IMAGE_SUFFIXES, read_image

    if len(spec.shape) != 4 or spec.shape[1] is None or spec.shape[3] not in (1, 3):
        raise InputError(f"{folder}: an image folder needs a model taking (batch, height, width, 1 or 3) images, "
                         f"this one takes {format_shape(spec.shape)}")  # fmt: skip
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    index, matched_by = _class_index(folder, classes, contract)
    size, mode = (spec.shape[2], spec.shape[1]), "L" if spec.shape[3] == 1 else "RGB"
    images, labels, skipped = [], [], 0
    for name in classes:
        label = index[name]
        for f in sorted((folder / name).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                image = read_image(f, size, mode)
                if image is None:
                    skipped += 1
                    continue
                images.append(image.reshape(spec.shape[1:]))
                labels.append(label)
    if not images:
        raise InputError(f"{folder}: no readable images in class sub-folders ({', '.join(classes) or 'none'})")
    x = np.stack(images).astype(np.float32)
    entry = (contract.input(spec.name) or (contract.inputs[0] if len(contract.inputs) == 1 else None)) if (
        contract) else None  # fmt: skip
    scaled = entry is not None and entry.kind == "image" and entry.range is not None and entry.range != PIXELS
    if scaled:  # model space: every artifact's runner quantizes it as its input wants
        x = pixels_to_range(x, entry.range)
    pixels = f"mapped onto {entry.range[0]:g}..{entry.range[1]:g} (the contract)" if scaled else "0..255"
    info = {"labels": classes, "classes_matched_by": matched_by, "skipped_unreadable": skipped, "pixels": pixels}
    return {spec.name: x}, {"": np.array(labels)}, info


def _csv(path: Path, spec: TensorSpec) -> tuple[dict, dict, dict]:
    from edgekit.common.readers import windows

    if len(spec.shape) != 3 or spec.shape[1] is None:
        raise InputError(f"{path}: a CSV series needs a model taking (batch, steps, features), "
                         f"this one takes {format_shape(spec.shape)}")  # fmt: skip
    try:
        series = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path}: not a numeric CSV with a header row ({exc})") from None
    if series.size == 0 or np.isnan(series).any():
        raise InputError(f"{path}: empty, or has non-numeric / missing values")
    features = spec.shape[2] or series.shape[1]
    if series.shape[1] < features:
        raise InputError(f"{path}: {series.shape[1]} column(s), the model takes {features} feature(s) per step")
    series = series[:, -features:]  # the last columns (a leading time or index column is left out)
    if len(series) <= spec.shape[1]:
        raise InputError(f"{path}: {len(series)} rows, need more than the model's {spec.shape[1]} steps")
    x, y = windows(series.astype(np.float32), spec.shape[1])
    info = {"windows": len(x), "columns_used": f"the last {features}", "target": "next value of the last column"}
    return {spec.name: x}, {"": y}, info


def _check_inputs(x: dict[str, np.ndarray], inputs: list[TensorSpec], source: str) -> None:
    counts = {name: len(a) for name, a in x.items()}
    if len(set(counts.values())) > 1:
        raise InputError(f"{source}: inputs disagree on the sample count: {counts}")
    if not next(iter(counts.values())):
        raise InputError(f"{source}: no samples")
    for spec in inputs:
        arr = x[spec.name]
        want = spec.shape[1:]
        fits = arr.ndim == len(spec.shape) and all(
            w is None or w == g for w, g in zip(want, arr.shape[1:], strict=True)
        )
        if not fits:
            raise InputError(f"{source}: input {spec.name!r} has samples of shape {format_shape(arr.shape[1:])}, "
                             f"the model takes {format_shape(want)}")  # fmt: skip
        if arr.dtype.kind not in "biuf":
            raise InputError(f"{source}: input {spec.name!r} is {arr.dtype}, not numbers")
        ids = np.dtype(spec.dtype).kind in "iu" and not spec.is_quantized
        if ids and arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{source}: input {spec.name!r} is {spec.dtype} (ids), the data has fractions")


def load_labelled(
    source: str | Path, inputs: list[TensorSpec], outputs: list[TensorSpec], contract: Contract | None = None
) -> LabelledData:
    """Read ``source`` (see the module docstring) and check it against the model's inputs and outputs.

    An image folder's sub-folders are the model's labels by name where the ``contract`` has labels, and its
    pixels go onto the range the contract says the model takes.

    Example:
        >>> load_labelled("empty_folder/", inputs, outputs)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: empty_folder: no readable images in class sub-folders (none)
    """
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: data not found")
    info: dict[str, Any] = {}
    origin = None
    if path.is_dir() and RunDir(path).test_split.is_file():
        path = RunDir(path).test_split
    if path.is_dir():
        x, y, info = _image_folder(path, inputs[0], contract)
    elif path.suffix == ".npz":
        x, y, origin = _npz(path, inputs, outputs)
    elif path.suffix == ".npy":
        arr = read_arrays(path)[""]
        if len(inputs) != 1:
            raise InputError(f"{path}: the model has {len(inputs)} inputs: use an .npz with x:<name> arrays")
        x, y = {inputs[0].name: arr}, None
    elif path.suffix == ".csv":
        x, y, info = _csv(path, inputs[0])
    else:
        raise InputError(f"{source}: data must be a run directory, .npz, .npy, .csv or an image folder")
    if y is not None and "" in y:  # labels of the single output, from a folder or a CSV
        if len(outputs) != 1:
            raise InputError(f"{source}: labels for one output, the model has {len(outputs)}")
        y = {outputs[0].name: y[""]}
    _check_inputs(x, inputs, str(path))
    n = len(next(iter(x.values())))
    for name, labels in (y or {}).items():
        if len(labels) != n:
            raise InputError(f"{path}: {len(labels)} label(s) for output {name!r}, {n} input sample(s)")
    return LabelledData(x=x, y=y, source=str(path), info=info, origin=origin)

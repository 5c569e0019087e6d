"""The Keras reference's outputs on the validation data, computed in a child process of the build lane.

The parent (``edgekit validate``) stays TensorFlow-free: it asks a child
(``python -m edgekit.buildlane.reference``) to load the ``.keras`` file and
predict; where TensorFlow is not installed (a Raspberry Pi), the reference is
*unavailable* with that reason and agreement is measured against the fp32
artifact instead.

Example:
    >>> outputs, reason = reference_outputs("runs/demo/mobilenet_digits/model.keras", data_npz, work)  # doctest: +SKIP
    >>> sorted(outputs), reason  # doctest: +SKIP
    (['head'], None)
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.stages.validate.child import run_module
from edgekit.stages.validate.data import InputsFile

TIMEOUT_S = 1800.0


def reference_outputs(
    model_path: str | Path,
    data: InputsFile,
    work: Path,
    load: dict[str, Any] | None = None,
    timeout: float = TIMEOUT_S,
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The model's outputs by output name on the inputs of ``data``; or None and why not. ``load`` holds
    ``unsafe``, ``custom_objects`` and ``outputs``, as ``convert`` takes them (and recorded them).

    Example:
        >>> reference_outputs("missing.keras", InputsFile("d.npz", []), Path("/tmp"))[1]
        'missing.keras: no such file'
    """
    if not Path(model_path).is_file() and not (Path(model_path) / "saved_model.pb").is_file():
        return None, f"{model_path}: no such file"
    if importlib.util.find_spec("tensorflow") is None:
        return None, "tensorflow is not installed (the runtime lane): agreement is measured against the fp32 artifact"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "reference.npz"
    args = [str(model_path), json.dumps(asdict(data)), str(out), json.dumps(load or {})]
    failure = run_module("edgekit.buildlane.reference", args, expect=out, timeout=timeout)
    if failure is not None:
        return None, f"the Keras model could not run: its process {failure}"
    with np.load(out) as f:
        return {k.split(":", 1)[1]: f[k] for k in f.files}, None

"""The Keras reference's outputs on the validation data, computed in a child process of the build lane.

The parent (``edgekit validate``) stays TensorFlow-free: it asks a child
(``python -m edgekit.validation.reference``) to load the ``.keras`` file and
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
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgekit.validation.child import run_module
from edgekit.validation.data import InputsFile

TIMEOUT_S = 1800.0


def reference_outputs(
    model_path: str | Path, data: InputsFile, work: Path, timeout: float = TIMEOUT_S
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The model's outputs by output name on the inputs of ``data``; or None and why not.

    Example:
        >>> reference_outputs("missing.keras", InputsFile("d.npz", []), Path("/tmp"))[1]
        'missing.keras: no such file'
    """
    if not Path(model_path).is_file():
        return None, f"{model_path}: no such file"
    if importlib.util.find_spec("tensorflow") is None:
        return None, "tensorflow is not installed (the runtime lane): agreement is measured against the fp32 artifact"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "reference.npz"
    args = [str(model_path), json.dumps(asdict(data)), str(out)]
    failure = run_module("edgekit.validation.reference", args, expect=out, timeout=timeout)
    if failure is not None:
        return None, f"the Keras model could not run: its process {failure}"
    with np.load(out) as f:
        return {k.split(":", 1)[1]: f[k] for k in f.files}, None


def _main(model_path: str, data_json: str, out: str) -> None:
    from edgekit.converters.source import input_specs, load_keras, output_names

    model = load_keras(model_path)
    specs = input_specs(model)
    feeds = InputsFile.from_dict(json.loads(data_json)).feeds([s.name for s in specs])
    predicted = model.predict(feeds if len(feeds) > 1 else feeds[0], batch_size=256, verbose=0)
    if not isinstance(predicted, (list, tuple, dict)):
        predicted = [predicted]
    names = output_names(model)
    values = [predicted[n] for n in model.output_names] if isinstance(predicted, dict) else list(predicted)
    np.savez(out, **{f"y:{name}": np.asarray(v, np.float32) for name, v in zip(names, values, strict=True)})


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], sys.argv[3])

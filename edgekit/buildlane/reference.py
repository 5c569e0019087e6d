"""The child process behind ``edgekit validate``'s Keras reference: load a ``.keras`` file and predict.

Run as ``python -m edgekit.buildlane.reference MODEL DATA_JSON OUT.npz [LOAD_JSON]`` by
:func:`edgekit.stages.validate.reference.reference_outputs`; writes ``y:<output name>`` arrays.

Example:
    $ python -m edgekit.buildlane.reference runs/m/model.keras '{"path": "d.npz", "keys": []}' /tmp/ref.npz
"""

from __future__ import annotations

import json
import sys

import numpy as np

from edgekit.stages.validate.data import InputsFile


def _main(model_path: str, data_json: str, out: str, load_json: str = "{}") -> None:
    from edgekit.converters.source import input_specs, load_keras, output_names, with_outputs
    from edgekit.converters.streaming import is_stateful, window_outputs

    load = json.loads(load_json)
    outputs = load.pop("outputs", None)  # convert --outputs: the model ending there
    model = with_outputs(load_keras(model_path, **load), outputs)  # unsafe, custom_objects
    specs = input_specs(model)
    feeds = InputsFile.from_dict(json.loads(data_json)).feeds([s.name for s in specs])
    if is_stateful(model):  # batch fixed at 1, state carried between calls: each window from zero state
        predicted = window_outputs(model, feeds[0].astype(np.float32))
    else:
        predicted = model.predict(feeds if len(feeds) > 1 else feeds[0], batch_size=256, verbose=0)
    if not isinstance(predicted, (list, tuple, dict)):
        predicted = [predicted]
    names = output_names(model)
    values = [predicted[n] for n in model.output_names] if isinstance(predicted, dict) else list(predicted)
    np.savez(out, **{f"y:{name}": np.asarray(v, np.float32) for name, v in zip(names, values, strict=True)})


if __name__ == "__main__":
    _main(*sys.argv[1:5])

"""Why a quantized artifact is out of tolerance: the error each layer adds, named by Keras layer.

For every TFLite int8 / 16x8 artifact that missed its tolerance, the worker runs TFLite's quantization
debugger on the calibration data (:mod:`edgekit.converters.diagnose`) — for ONNX int8, ONNX Runtime's
``qdq_loss_debug`` (:func:`edgekit.converters.onnx.onnx_layer_errors`) — and the artifact's entry gets
``layer_errors`` (graph order: ``name``, ``op``, ``snr_db``, ``rmse_over_scale``, ``keras_layer``) and
``worst_layers`` (the three lowest SNRs), and its warning names them.

Example:
    >>> diagnose_out_of_tolerance(run, inputs, settings, checked)  # doctest: +SKIP
    >>> checked.artifacts[1]["worst_layers"][0]["keras_layer"]  # doctest: +SKIP
    'scale'
"""

from __future__ import annotations

from edgekit.rundir import RunDir
from edgekit.stages.convert.check import Checked
from edgekit.stages.convert.child import diagnose_in_child
from edgekit.stages.convert.inputs import ConvertInputs
from edgekit.stages.convert.settings import ConvertSettings

DIAGNOSED = ("tflite:int8", "tflite:16x8", "onnx:int8")
WORST = 3


def diagnose_out_of_tolerance(run: RunDir, inputs: ConvertInputs, settings: ConvertSettings, checked: Checked) -> None:
    """Add ``layer_errors`` and ``worst_layers`` to each out-of-tolerance TFLite int8 / 16x8 entry lacking them.

    Example:
        >>> diagnose_out_of_tolerance(RunDir("runs/ae/convert"), inputs, ConvertSettings(), checked)  # doctest: +SKIP
        >>> [e["op"] for e in checked.artifacts[1]["worst_layers"]]  # doctest: +SKIP
        ['MUL', 'FULLY_CONNECTED', 'SUB']
    """
    entries = {
        a["precision_token"]: a
        for a in checked.artifacts
        if a.get("verdict") == "out_of_tolerance" and a["precision_token"] in DIAGNOSED and "layer_errors" not in a
    }
    if not entries or inputs.calib is None:
        return
    for token, found in diagnose_in_child(run, inputs, settings, list(entries)).items():
        if isinstance(found, dict):
            entries[token]["layer_errors"] = {"unavailable": found["error"]}
            continue
        entries[token]["layer_errors"] = found
        entries[token]["worst_layers"] = sorted(found, key=lambda e: e["snr_db"])[:WORST]


def worst_layers_line(entry: dict) -> str:
    """The worst layers of a diagnosed entry, for its warning: ``scale (SUB, 3.1 dB), ...``; empty when none.

    Example:
        >>> worst_layers_line({"worst_layers": [{"keras_layer": "scale", "name": "t", "op": "SUB", "snr_db": 3.1}]})
        'worst layers: scale (SUB, 3.1 dB)'
    """
    worst = entry.get("worst_layers") or []
    named = [f"{e['keras_layer'] or e['name']} ({e['op']}, {e['snr_db']:g} dB)" for e in worst]
    return f"worst layers: {', '.join(named)}" if named else ""

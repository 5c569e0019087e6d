"""Per-layer quantization error of a TFLite int8 / 16x8 conversion, with TFLite's own quantization debugger.

``tf.lite.experimental.QuantizationDebugger`` builds a debug model in which every quantized op's output is
compared with the float op run on the same (dequantized) inputs, on the calibration data: the error *that
layer adds*. Each layer gets its signal-to-noise ratio in dB (the float output's power over the error's;
higher is better, < 20 dB is where int8 usually breaks a model), its RMSE over the quantization step,
the TFLite op and output tensor, and the Keras layer the tensor comes from.

Example:
    >>> errors = layer_errors(debugged(model, calibration, inputs=specs, outputs=names))  # doctest: +SKIP
    >>> min(errors, key=lambda e: e["snr_db"])["keras_layer"]  # doctest: +SKIP
    'scale'
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.common.calibration import Feeds, count
from edgekit.converters.tflite import tflite_converter
from edgekit.runtime.specs import TensorSpec

MAX_SAMPLES = 64  # the debugger runs its debug model sample by sample in Python
SNR_CAP_DB = 120.0  # an exact layer (no error) is reported at this ceiling, so the list stays JSON numbers


def _snr_db(float_values: Sequence[np.ndarray], quantized: Sequence[np.ndarray], scale: float, zero: int) -> float:
    """Signal-to-noise ratio of one layer's output on one sample: float power over the quantization error's."""
    ref = np.asarray(float_values, np.float64)
    got = (np.asarray(quantized, np.int64) - zero) * scale
    noise = float(np.sum((got - ref) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0:
        return SNR_CAP_DB
    return float(np.clip(10 * np.log10(max(signal, 1e-30) / noise), -SNR_CAP_DB, SNR_CAP_DB))


def debugged(
    model: Any,
    calibration: Feeds,
    *,
    precision: str = "int8",
    batch: int = 1,
    per_channel: bool = True,
    inputs: list[TensorSpec],
    outputs: list[str],
) -> Any:
    """TFLite's quantization debugger on ``model``, calibrated once and run on the calibration data: the
    source of :func:`layer_errors` and of every :func:`quantized_except` candidate.

    Example:
        >>> debugger = debugged(model, calibration, inputs=specs, outputs=names)  # doctest: +SKIP
    """
    import tensorflow as tf

    n = min(count(calibration), MAX_SAMPLES)

    def dataset() -> Any:  # lists in the debug interpreter's input order (called after the debugger is built)
        details = debugger._quant_interpreter.get_input_details()
        order = [max((s for s in inputs if s.name in d["name"]), key=lambda s: len(s.name)) for d in details]
        for i in range(n):
            yield [calibration[s.name][i : i + 1] for s in order]

    converter = tflite_converter(
        model, precision, calibration=calibration, batch=batch, int8_io="float32", per_channel=per_channel,
        inputs=inputs, outputs=outputs,
    )  # fmt: skip
    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"snr_db": _snr_db})
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=dataset, debug_options=options
    )
    debugger.run()
    return debugger


def layer_errors(debugger: Any, layer_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every quantized layer's added error, in graph order: ``name`` (TFLite tensor), ``op``, ``snr_db``,
    ``rmse_over_scale`` and ``keras_layer`` (the last of ``layer_names`` in the tensor's name, else None).

    Example:
        >>> layer_errors(debugged(model, calibration, inputs=specs, outputs=names))[0]["op"]  # doctest: +SKIP
        'SUB'
    """
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    defining = getattr(debugger, "_defining_op", {})  # the op that writes each tensor: graph order
    rows.sort(key=lambda r: defining.get(int(r["tensor_idx"]), int(r["tensor_idx"])))
    return [
        {
            "name": row["tensor_name"],
            "op": row["op_name"],
            "snr_db": round(float(row["snr_db"]), 2),
            "rmse_over_scale": round(float(np.sqrt(float(row["mean_squared_error"]))) / float(row["scale"]), 4),
            "keras_layer": keras_layer_of(row["tensor_name"], layer_names),
        }
        for row in rows
    ]


def quantized_except(debugger: Any, float_tensors: Sequence[str]) -> bytes:
    """The debugger's calibrated model quantized to int8 except the ops writing ``float_tensors`` (float
    inputs and outputs; builtin ops only, so it runs in the stock LiteRT).

    Example:
        >>> blob = quantized_except(debugger, ["model/scale/sub"])  # doctest: +SKIP
    """
    from tensorflow.lite.python import convert

    return bytes(
        convert.mlir_quantize(
            debugger.calibrated_model,
            disable_per_channel=debugger.converter._experimental_disable_per_channel,
            fully_quantize=False,
            enable_numeric_verify=False,
            denylisted_nodes=list(float_tensors) or None,
        )
    )


def keras_layer_of(tensor_name: str, layer_names: Sequence[str]) -> str | None:
    """The Keras layer a TFLite tensor comes from: the innermost scope of its (first fused) name that is a layer
    name, allowing the ``_1`` suffixes tracing adds.

    When the root scope is the model's name with a suffix (``layer_names`` holds the model's own name), tracing
    suffixed every scope, and a scope's suffix comes off first: in a nested model, layer ``conv2d`` is traced as
    ``conv2d_1`` and layer ``conv2d_1`` as ``conv2d_1_2``, so taking ``conv2d_1`` as it is would name the wrong
    layer (and ``conv2d_1`` twice).

    Example:
        >>> keras_layer_of("scorer_1/autoencoder_1/dense_6_1/MatMul;scorer_1/x/BiasAdd", ["autoencoder", "dense_6"])
        'dense_6'
        >>> names = ["functional", "base", "conv2d", "conv2d_1"]
        >>> [keras_layer_of(f"functional_1/base_1/{s}/convolution", names) for s in ("conv2d_1", "conv2d_1_2")]
        ['conv2d', 'conv2d_1']
    """
    known = set(layer_names)
    parts = tensor_name.split(";")[0].split("/")
    suffixed = parts[0] not in known and re.sub(r"_\d+$", "", parts[0]) in known
    found = None
    for part in parts:
        stripped = re.sub(r"_\d+$", "", part)
        for candidate in (stripped, part) if suffixed else (part, stripped):
            if candidate in known:
                found = candidate
                break
    return found

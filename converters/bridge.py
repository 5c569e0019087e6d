"""Rebuild a Keras 3 model as a tf_keras (Keras 2) model with the same weights.

tf_keras graphs are what TFMOT accepts and what the TFLite converter fuses
into ``UNIDIRECTIONAL_SEQUENCE_LSTM``; Keras 3 LSTMs convert to a WHILE loop.
The bridge rebuilds every layer from its config (initializers dropped, dtype
policies turned into float32), replays the functional graph with
``Functional._run_through_graph``, copies the weights, and checks parity.
It refuses, by layer name, what it cannot rebuild.

Example:
    >>> legacy = to_tf_keras(keras3_model)  # doctest: +SKIP
    >>> legacy.__module__.startswith("tf_keras")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from edgekit.errors import ConversionError

log = logging.getLogger(__name__)

BASE_LAYER_KEYS = {"name", "trainable", "dtype"}
PARITY_ATOL = 1e-5


def _clean_config(layer_cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys the tf_keras class accepts; drop initializers; float32 policies."""
    accepted = set(inspect.signature(layer_cls.__init__).parameters) | BASE_LAYER_KEYS
    clean = {}
    for key, value in config.items():
        if key not in accepted or key.endswith("_initializer"):
            continue
        if key == "dtype":
            value = "float32"  # mixed-precision sources convert as float32 graphs
        clean[key] = value
    return clean


def _twin(layer: Any, made: dict[int, Any], tf_keras: Any) -> Any:
    """The tf_keras twin of one Keras 3 layer (nested models bridged recursively)."""
    if id(layer) in made:
        return made[id(layer)]
    name = type(layer).__name__
    if name in ("Functional", "Sequential", "Model"):
        twin = _rebuild(layer, made, tf_keras)
    else:
        layer_cls = getattr(tf_keras.layers, name, None)
        if layer_cls is None or type(layer).__module__.split(".")[0] != "keras":
            raise ConversionError(
                f"the tf_keras bridge cannot rebuild layer {layer.name!r} ({name}): no tf_keras equivalent"
            )
        try:
            twin = layer_cls.from_config(_clean_config(layer_cls, layer.get_config()))
        except Exception as exc:
            raise ConversionError(f"the tf_keras bridge cannot rebuild layer {layer.name!r} ({name}): {exc}") from None
    made[id(layer)] = twin
    return twin


def _rebuild(model: Any, made: dict[int, Any], tf_keras: Any) -> Any:
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_run_through_graph"):
        raise ConversionError(
            f"the tf_keras bridge needs a Functional or Sequential model; {model.name!r} is subclassed "
            f"({type(model).__name__})"
        )
    inputs = [
        tf_keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype if "int" in str(t.dtype) else "float32", name=t.name)
        for t in graph.inputs
    ]
    outputs = graph._run_through_graph(
        inputs if len(inputs) > 1 else inputs[0],
        operation_fn=lambda op: _twin(op, made, tf_keras),
        call_fn=lambda op, *args, **kwargs: op(*args, **kwargs),
    )
    return tf_keras.Model(inputs, outputs, name=model.name)


def _copy_weights(source: Any, made: dict[int, Any]) -> None:
    for layer in source._flatten_layers(include_self=False, recursive=True):
        twin = made.get(id(layer))
        if twin is not None and layer.weights and not hasattr(layer, "_run_through_graph"):
            twin.set_weights([np.asarray(w, dtype=np.float32) for w in layer.get_weights()])


def _arrays(outputs: Any) -> list[np.ndarray]:
    """A model's prediction (one tensor or a list) as a list of float32 arrays."""
    return [np.asarray(o, np.float32) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference over all outputs of two models' predictions."""
    return float(max(np.max(np.abs(x - y)) for x, y in zip(_arrays(a), _arrays(b), strict=True)))


def to_tf_keras(model: Any, sample: list[np.ndarray] | None = None) -> tuple[Any, float]:
    """Rebuild ``model`` in tf_keras; return it with the parity (max abs diff) on ``sample``.

    Raises :class:`ConversionError` naming the layer it cannot rebuild, or when
    parity exceeds 1e-5.

    Example:
        >>> legacy, diff = to_tf_keras(model, [x])  # doctest: +SKIP
        >>> diff < 1e-5  # doctest: +SKIP
        True
    """
    import tf_keras

    made: dict[int, Any] = {}
    legacy = _rebuild(model, made, tf_keras)
    _copy_weights(model, made)
    if sample is None:
        rng = np.random.default_rng(0)
        sample = [rng.standard_normal([d or 2 for d in t.shape]).astype(np.float32) for t in model.inputs]
    feed = sample if len(sample) > 1 else sample[0]
    reference = model(feed, training=False)
    diff = max_abs_diff(reference, legacy(feed, training=False))
    scale = max(1.0, *(float(np.max(np.abs(r))) for r in _arrays(reference)))
    if not diff <= PARITY_ATOL * scale:
        raise ConversionError(
            f"the tf_keras rebuild of {model.name!r} differs from the source (max abs diff {diff:.3g})"
        )
    log.info("tf_keras bridge: %s rebuilt, max abs diff %.3g", model.name, diff)
    return legacy, diff

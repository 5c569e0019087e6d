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
FOLDABLE = {"Conv1D", "Conv2D", "DepthwiseConv2D", "Dense"}  # a linear layer BatchNorm can fold into
UNROLLABLE = {"GRU", "SimpleRNN"}  # their int8 calibration runs a WHILE loop that crashes the converter


def _clean_config(layer_cls: type, config: dict[str, Any], tf_keras: Any, unroll: bool = False) -> dict[str, Any]:
    """Keep the keys the tf_keras class accepts; drop initializers; float32 policies; clean wrapped layers too.

    ``unroll`` unrolls GRU and SimpleRNN layers over their (static) time steps.
    """
    accepted = set(inspect.signature(layer_cls.__init__).parameters) | BASE_LAYER_KEYS
    clean = {}
    for key, value in config.items():
        if key not in accepted or key.endswith("_initializer"):
            continue
        if key == "dtype":
            value = "float32"  # mixed-precision sources convert as float32 graphs
        if key in ("layer", "backward_layer") and isinstance(value, dict):  # TimeDistributed, Bidirectional
            inner_cls = getattr(tf_keras.layers, value["class_name"])
            inner = _clean_config(inner_cls, value["config"], tf_keras, unroll)
            value = {"class_name": value["class_name"], "config": inner}
        clean[key] = value
    if unroll and layer_cls.__name__ in UNROLLABLE:
        clean["unroll"] = True
    return clean


def _is_functional(layer: Any) -> bool:
    return type(layer).__name__ in ("Functional", "Sequential", "Model") and hasattr(
        getattr(layer, "_functional", None) or layer, "_run_through_graph"
    )


def _twin(layer: Any, made: dict[int, Any], tf_keras: Any, unroll: bool = False) -> Any:
    """The tf_keras twin of one Keras 3 layer (nested models bridged recursively)."""
    if id(layer) in made:
        return made[id(layer)]
    name = type(layer).__name__
    if name in ("Functional", "Sequential", "Model"):
        twin = _rebuild(layer, made, tf_keras, unroll=unroll)
    else:
        layer_cls = getattr(tf_keras.layers, name, None)
        if layer_cls is None or type(layer).__module__.split(".")[0] != "keras":
            raise ConversionError(
                f"the tf_keras bridge cannot rebuild layer {layer.name!r} ({name}): no tf_keras equivalent"
            )
        try:
            twin = layer_cls.from_config(_clean_config(layer_cls, layer.get_config(), tf_keras, unroll))
        except Exception as exc:
            raise ConversionError(f"the tf_keras bridge cannot rebuild layer {layer.name!r} ({name}): {exc}") from None
    made[id(layer)] = twin
    return twin


def _rebuild(model: Any, made: dict[int, Any], tf_keras: Any, flatten: bool = False, unroll: bool = False) -> Any:
    """Replay ``model``'s graph on tf_keras inputs; nested models become nested twins, or are inlined (``flatten``)."""
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

    def operation(op: Any) -> Any:
        return op if flatten and _is_functional(op) else _twin(op, made, tf_keras, unroll)

    def call(op: Any, *args: Any, **kwargs: Any) -> Any:
        if flatten and _is_functional(op):  # inline the nested model's graph (TFMOT wraps top-level layers only)
            inner = getattr(op, "_functional", None) or op
            return inner._run_through_graph(args[0], operation_fn=operation, call_fn=call)
        # Keras 3 records the resolved `training` flag (often False) on each node; baked into a tf_keras graph it
        # would pin layers to one mode, e.g. TFMOT's pruning wrapper never updating an LSTM's masks.
        kwargs.pop("training", None)
        return op(*args, **kwargs)

    outputs = graph._run_through_graph(inputs if len(inputs) > 1 else inputs[0], operation_fn=operation, call_fn=call)
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


def _check_parity(reference: Any, outputs: Any, tolerance: float, what: str) -> float:
    """Max abs diff of ``outputs`` from ``reference``; raise ``what`` when over ``tolerance`` × max(1, |reference|)."""
    diff = max_abs_diff(reference, outputs)
    scale = max(1.0, *(float(np.max(np.abs(r))) for r in _arrays(reference)))
    if not diff <= tolerance * scale:
        raise ConversionError(f"{what} (max abs diff {diff:.3g})")
    return diff


def to_tf_keras(
    model: Any, sample: list[np.ndarray] | None = None, *, flatten: bool = False, unroll: bool = False
) -> tuple[Any, float]:
    """Rebuild ``model`` in tf_keras; return it with the parity (max abs diff) on ``sample``.

    ``flatten`` inlines nested models (a MobileNet base inside a transfer
    model) so every layer is top-level, as TFMOT needs. ``unroll`` unrolls
    GRU and SimpleRNN layers (static sequence length only): the route their
    int8 conversion survives. Raises
    :class:`ConversionError` naming the layer it cannot rebuild, or when
    parity exceeds 1e-5.

    Example:
        >>> legacy, diff = to_tf_keras(model, [x])  # doctest: +SKIP
        >>> diff < 1e-5  # doctest: +SKIP
        True
    """
    import tf_keras

    made: dict[int, Any] = {}
    legacy = _rebuild(model, made, tf_keras, flatten, unroll)
    _copy_weights(model, made)
    if sample is None:
        rng = np.random.default_rng(0)
        sample = [rng.standard_normal([d or 2 for d in t.shape]).astype(np.float32) for t in model.inputs]
    feed = sample if len(sample) > 1 else sample[0]
    diff = _check_parity(
        model(feed, training=False), legacy(feed, training=False), PARITY_ATOL,
        f"the tf_keras rebuild of {model.name!r} differs from the source",
    )  # fmt: skip
    log.info("tf_keras bridge: %s rebuilt, max abs diff %.3g", model.name, diff)
    return legacy, diff


def _foldable_pairs(legacy: Any) -> dict[str, Any]:
    """``{layer name: BatchNorm}`` for each BatchNorm over the last axis whose only input is a linear Conv/Dense
    layer used by nothing else."""
    pairs = {}
    for bn in legacy.layers:
        if type(bn).__name__ != "BatchNormalization" or len(bn._inbound_nodes) != 1:
            continue
        producer = bn._inbound_nodes[0].inbound_layers
        if (
            type(producer).__name__ in FOLDABLE
            and len(producer._inbound_nodes) == 1
            and len(producer._outbound_nodes) == 1
            and producer.get_config().get("activation") == "linear"
            and list(bn.axis) == [len(bn.input_shape) - 1]
            and (bn.center or producer.use_bias)  # somewhere to keep the shift
        ):
            pairs[producer.name] = bn
    return pairs


def _bn_scale_shift(bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in inference as ``x * scale + shift``, per channel."""
    mean, var = (np.asarray(w, np.float64) for w in (bn.moving_mean, bn.moving_variance))
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def fold_batchnorm(legacy: Any, sample: list[np.ndarray]) -> list[str]:
    """Fold each BatchNorm into the Conv/Dense layer before it, in place; return the folded layers' names.

    The layer's kernel takes the BatchNorm's per-channel scale; the BatchNorm
    keeps only the shift (gamma 1, mean 0, variance 1 - epsilon), so the
    architecture, and the write-back by name, are unchanged. Clustering needs
    this: the converter folds BatchNorm after clustering, rescaling every
    channel's centroids differently, so a clustered float file would not keep
    its few values per tensor. BatchNorm layers must stay frozen afterwards.
    Parity on ``sample`` is checked (1e-4 relative).

    Example:
        >>> fold_batchnorm(legacy, [x])[:1]  # doctest: +SKIP
        ['Conv1']
    """
    feed = sample if len(sample) > 1 else sample[0]
    reference = legacy(feed, training=False)
    pairs = _foldable_pairs(legacy)
    for name, bn in pairs.items():
        layer = legacy.get_layer(name)
        kernel = np.asarray(layer.weights[0], np.float64)
        bias = np.asarray(layer.bias, np.float64) if layer.use_bias else 0.0
        scale, shift = _bn_scale_shift(bn)
        shift = shift + bias * scale
        if type(layer).__name__ == "DepthwiseConv2D":  # [h, w, in, multiplier]: output channel = in * mult + m
            kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        else:
            kernel = kernel * scale
        zeros = np.zeros_like(scale)
        layer_bias, bn_beta = (zeros, shift) if bn.center else (shift, zeros)  # the shift goes where a bias is
        layer.set_weights([kernel] + ([layer_bias] if layer.use_bias else []))
        values = {
            "gamma": np.ones_like(scale),
            "beta": bn_beta,
            "moving_mean": zeros,
            "moving_variance": 1 - bn.epsilon + zeros,
        }
        bn.set_weights([values[w.name.split("/")[-1].split(":")[0]] for w in bn.weights])
    what = f"folding BatchNorm into {legacy.name!r} changed its outputs"
    diff = _check_parity(reference, legacy(feed, training=False), 1e-4, what)
    log.info("folded %d BatchNorm layers, max abs diff %.3g", len(pairs), diff)
    return list(pairs)


def copy_weights_back(legacy: Any, model: Any) -> list[str]:
    """Copy a tf_keras model's weights into the Keras 3 ``model`` it was bridged from, matching layers by name.

    Used after a pass whose result keeps the architecture (stripped pruning or
    clustering). Returns the names of the layers copied.

    Example:
        >>> copy_weights_back(stripped, keras3_model)[:2]  # doctest: +SKIP
        ['Conv1', 'bn_Conv1']
    """
    by_name = {layer.name: layer for layer in legacy._flatten_layers(include_self=False, recursive=True)}
    copied = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        twin = by_name.get(layer.name)
        if twin is None or not layer.weights or _is_functional(layer):
            continue
        weights = twin.get_weights()
        if [w.shape for w in weights] != [tuple(w.shape) for w in layer.weights]:
            raise ConversionError(f"layer {layer.name!r}: the optimized weights do not fit the source model")
        layer.set_weights(weights)
        copied.append(layer.name)
    return copied

"""Rebuild a Keras 3 model as a tf_keras (Keras 2) model with the same weights.

tf_keras graphs are what TFMOT accepts and what the TFLite converter fuses
into ``UNIDIRECTIONAL_SEQUENCE_LSTM``; Keras 3 LSTMs convert to a WHILE loop.
The bridge rebuilds every layer from its config (initializers dropped, dtype
policies turned into float32), replays the functional graph with
``Functional._run_through_graph``, copies the weights, and checks parity.
Activations Keras 3 defines differently from tf_keras (``hard_sigmoid``) or
that tf_keras lacks (``hard_silu``) map to tf functions with the Keras 3
semantics (:data:`KERAS3_ACTIVATIONS`); ``x + y``-style ``keras.ops`` nodes
become merge or Rescaling layers. It refuses, by layer name, what it cannot
rebuild.

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
PARITY_ATOL = 1e-4  # relative to max(1, |output|): float32 rounding in deep nets (EfficientNetV2) reaches 1e-5
FOLDABLE = {"Conv1D", "Conv2D", "DepthwiseConv2D", "Dense"}  # a linear layer BatchNorm can fold into
UNROLLABLE = {"GRU", "SimpleRNN"}  # their int8 calibration runs a WHILE loop that crashes the converter
MERGE_OPS = {"Add", "Subtract", "Multiply", "Maximum", "Minimum"}  # keras.ops on two tensors → tf_keras merge layers
ACTIVATION_ALIASES = {"hard_swish": "hard_silu"}
GELU_APPROXIMATE = "gelu_approximate"  # what `keras.ops.gelu` (approximate=True) is, though it serializes as "gelu"
MASK_OPS = {"NotEqual", "Any"}  # what Keras 3 records for Embedding(mask_zero=True) and Masking's compute_mask
MASKING_LAYERS = {"Embedding", "Masking"}


class _Mask:
    """Stands in for a Keras 3 mask node: tf_keras derives the same mask itself (Embedding / Masking set
    ``_keras_mask`` on their output and every mask-aware layer after them receives it), so a ``mask=`` argument
    holding one is dropped. Used as a value instead, it is refused."""

    def __init__(self, op_name: str) -> None:
        self.op_name = op_name


def _keras3_activations() -> dict[str, Any]:
    """``{Keras 3 name: tf function}`` for the activations tf_keras lacks or defines differently.

    Each is written as the Keras 3 TensorFlow backend computes it and is
    registered with tf_keras as ``edgekit>keras3_<name>``, so a rebuilt
    model survives ``clone_model`` (TFMOT's wrappers). tf_keras's own
    ``hard_sigmoid`` is ``clip(0.2 x + 0.5, 0, 1)``; Keras 3's is
    ``relu6(x + 3) / 6``. ``swish``/``silu``, ``gelu`` (exact), ``relu6``,
    ``leaky_relu`` and ``mish`` already agree and are left to tf_keras.

    Example:
        >>> float(KERAS3_ACTIVATIONS["hard_sigmoid"](tf.constant(1.0)))  # doctest: +SKIP
        0.6666667
    """
    import tensorflow as tf
    import tf_keras

    def hard_sigmoid(x: Any) -> Any:
        return tf.nn.relu6(x + 3.0) / 6.0

    functions = {
        "hard_sigmoid": hard_sigmoid,
        "hard_silu": lambda x: x * hard_sigmoid(x),
        GELU_APPROXIMATE: lambda x: tf.nn.gelu(x, approximate=True),
        "hard_tanh": lambda x: tf.clip_by_value(x, -1.0, 1.0),
        "log_sigmoid": tf.math.log_sigmoid,
        "celu": lambda x: tf.maximum(x, 0.0) + tf.math.expm1(tf.minimum(x, 0.0)),
        "tanh_shrink": lambda x: x - tf.math.tanh(x),
        "soft_shrink": lambda x: tf.where(x > 0.5, x - 0.5, tf.where(x < -0.5, x + 0.5, tf.zeros_like(x))),
        "hard_shrink": lambda x: tf.where(tf.abs(x) > 0.5, x, tf.zeros_like(x)),
        "squareplus": lambda x: (x + tf.sqrt(tf.square(x) + 4.0)) / 2,
        "sparse_plus": lambda x: tf.where(x <= -1, tf.zeros_like(x), tf.where(x < 1, 0.25 * tf.pow(x + 1, 2), x)),
        "sparse_sigmoid": lambda x: tf.where(
            x <= -1, tf.zeros_like(x), tf.where(x >= 1, tf.ones_like(x), 0.5 * (x + 1))
        ),
    }
    registered = {}
    for name, tf_fn in functions.items():

        def activation(x: Any, _fn: Any = tf_fn) -> Any:
            return _fn(x)

        activation.__name__ = activation.__qualname__ = f"keras3_{name}"
        registered[name] = tf_keras.utils.register_keras_serializable(package="edgekit")(activation)
    return registered


KERAS3_ACTIVATIONS: dict[str, Any] = {}  # filled on first use (it imports TensorFlow)


def _activation(value: Any, where: str) -> Any:
    """The tf_keras activation for a Keras 3 config value: a name, or a Keras 3 function with Keras 3 semantics.

    Example:
        >>> _activation("hard_swish", "layer 'act'").__name__  # doctest: +SKIP
        'keras3_hard_silu'
    """
    if not isinstance(value, str):
        raise ConversionError(f"the tf_keras bridge cannot rebuild {where}: custom activation {value!r}")
    if not KERAS3_ACTIVATIONS:
        KERAS3_ACTIVATIONS.update(_keras3_activations())
    name = ACTIVATION_ALIASES.get(value, value)
    return KERAS3_ACTIVATIONS.get(name, name)


def _clean_config(
    layer_cls: type, config: dict[str, Any], tf_keras: Any, unroll: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Keep the keys the tf_keras class accepts; drop initializers; float32 policies; Keras 3 activations; clean
    wrapped layers too.

    ``unroll`` names the recurrent classes to unroll over their (static) time steps.
    """
    accepted = set(inspect.signature(layer_cls.__init__).parameters) | BASE_LAYER_KEYS
    clean = {}
    for key, value in config.items():
        if key not in accepted or key.endswith("_initializer"):
            continue
        if key == "dtype":
            value = "float32"  # mixed-precision sources convert as float32 graphs
        if key.endswith("activation") and value is not None:  # activation, recurrent_activation
            value = _activation(value, f"layer {config.get('name')!r}")
        if key in ("layer", "backward_layer") and isinstance(value, dict):  # TimeDistributed, Bidirectional
            inner_cls = getattr(tf_keras.layers, value["class_name"])
            inner = _clean_config(inner_cls, value["config"], tf_keras, unroll)
            value = {"class_name": value["class_name"], "config": inner}
        clean[key] = value
    if layer_cls.__name__ in unroll:
        clean["unroll"] = True
    return clean


def padding_value(model: Any) -> float | None:
    """The value a masked model skips (0 for ``Embedding(mask_zero=True)``, Masking's ``mask_value``), else None.

    Example:
        >>> padding_value(text_classifier)  # doctest: +SKIP
        0.0
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer).__name__ == "Embedding" and layer.mask_zero:
            return 0.0
        if type(layer).__name__ == "Masking":
            return float(layer.mask_value)
    return None


def unrolled_classes(model: Any) -> set[str]:
    """The recurrent classes in ``model`` whose int8 conversion needs them unrolled: GRU and SimpleRNN, and LSTM
    when the model is masked (a masked LSTM does not fuse; it stays a WHILE loop, which calibration crashes on).

    Example:
        >>> unrolled_classes(text_classifier)  # doctest: +SKIP
        {'LSTM'}
    """
    classes = UNROLLABLE | ({"LSTM"} if padding_value(model) is not None else set())
    return {type(layer).__name__ for layer in model._flatten_layers()} & classes


def _is_functional(layer: Any) -> bool:
    return type(layer).__name__ in ("Functional", "Sequential", "Model") and hasattr(
        getattr(layer, "_functional", None) or layer, "_run_through_graph"
    )


def _layer_config(layer: Any) -> dict[str, Any]:
    """``layer.get_config()``, with ``keras.ops.gelu`` (approximate, though it serializes as "gelu") told apart."""
    import keras

    config = layer.get_config()
    for key in config:
        if key.endswith("activation") and getattr(layer, key, None) is keras.ops.gelu:
            config[key] = GELU_APPROXIMATE
    return config


def _op_twin(op: Any, tf_keras: Any) -> Any:
    """A callable replaying one ``keras.ops`` node (``x + y``, ``x * 0.5``) with tf_keras layers.

    Two tensors go through a merge layer (``Add``, ``Subtract``, ``Multiply``,
    ``Maximum``, ``Minimum``); a tensor and a scalar through ``Rescaling``
    (``+ - * /``). Anything else is refused by the operation's name.

    Example:
        >>> _op_twin(add_op, tf_keras)(a, 3.0)  # doctest: +SKIP
        <KerasTensor ... created by layer 'add'>
    """
    name = type(op).__name__

    def refuse(why: str) -> ConversionError:
        return ConversionError(f"the tf_keras bridge cannot rebuild operation {op.name!r} ({name}): {why}")

    def call(*args: Any, **kwargs: Any) -> Any:
        if name in MASK_OPS:  # checked where it is used: only as a layer's `mask=` argument
            return _Mask(op.name)
        if kwargs or len(args) != 2:
            raise refuse("no tf_keras equivalent")
        tensors = [not isinstance(a, (int, float, np.number, np.ndarray)) for a in args]  # tf_keras KerasTensors
        if all(tensors):
            if name not in MERGE_OPS:
                raise refuse("no tf_keras merge layer for it")
            try:
                return getattr(tf_keras.layers, name)(name=op.name)(list(args))
            except (TypeError, ValueError) as exc:  # e.g. a constant tf tensor, or shapes a merge layer refuses
                raise refuse(str(exc)) from None
        scalar = args[tensors.index(False)]
        if not isinstance(scalar, (int, float, np.number)) and np.ndim(scalar) != 0:
            raise refuse("only a scalar constant can be rebuilt")
        c, first = float(scalar), tensors[0]
        scale_offset = {
            ("Add", True): (1.0, c), ("Add", False): (1.0, c),
            ("Subtract", True): (1.0, -c), ("Subtract", False): (-1.0, c),
            ("Multiply", True): (c, 0.0), ("Multiply", False): (c, 0.0),
            ("TrueDivide", True): (1.0 / c if c else None, 0.0), ("Divide", True): (1.0 / c if c else None, 0.0),
        }.get((name, first))  # fmt: skip
        if scale_offset is None or scale_offset[0] is None:
            raise refuse("no tf_keras equivalent with a constant")
        tensor = args[0] if first else args[1]
        return tf_keras.layers.Rescaling(scale_offset[0], offset=scale_offset[1], name=op.name)(tensor)

    return call


def _custom_layer_twin(layer: Any, tf_keras: Any) -> Any:
    """A tf_keras layer that calls a Keras 3 layer as it is, on the same variables.

    For the user's own classes and Keras layers tf_keras lacks (ConvNeXt's
    ``LayerScale``). Such a class has no tf_keras twin to rebuild from its config, but with
    the TensorFlow backend a Keras 3 layer runs on the tensors of a tf_keras
    graph. Its variables are listed on the wrapper, so tf_keras counts them as
    the layer's weights; TFMOT leaves the wrapper alone (neither prunable nor
    clusterable) and QAT refuses it by name (``--leave-float`` keeps it float).

    Example:
        >>> _custom_layer_twin(gain_layer, tf_keras).name  # doctest: +SKIP
        'gain'
    """

    class Keras3Layer(tf_keras.layers.Layer):
        def __init__(self, inner: Any) -> None:
            super().__init__(name=inner.name, trainable=inner.trainable)
            self.inner = inner
            self.inner_variables = [v.value for v in inner.weights]

        def call(self, *args: Any, **kwargs: Any) -> Any:
            return self.inner(*args, **kwargs)

    return Keras3Layer(layer)


def _twin(layer: Any, made: dict[int, Any], tf_keras: Any, unroll: frozenset[str] = frozenset()) -> Any:
    """The tf_keras twin of one Keras 3 layer (nested models bridged recursively; ``keras.ops`` nodes replayed)."""
    import keras

    if id(layer) in made:
        return made[id(layer)]
    name = type(layer).__name__
    if not isinstance(layer, keras.layers.Layer):  # a keras.ops node, e.g. from `x + y` on KerasTensors
        return _op_twin(layer, tf_keras)
    if name in ("Functional", "Sequential", "Model"):
        twin = _rebuild(layer, made, tf_keras, unroll=unroll)
    else:
        layer_cls = getattr(tf_keras.layers, name, None)
        # the user's own layer, or a Keras one tf_keras lacks (ConvNeXt's LayerScale): called as it is
        if layer_cls is None or type(layer).__module__.split(".")[0] != "keras":
            made[id(layer)] = twin = _custom_layer_twin(layer, tf_keras)
            return twin
        try:
            twin = layer_cls.from_config(_clean_config(layer_cls, _layer_config(layer), tf_keras, unroll))
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"the tf_keras bridge cannot rebuild layer {layer.name!r} ({name}): {exc}") from None
    made[id(layer)] = twin
    return twin


def _rebuild(
    model: Any, made: dict[int, Any], tf_keras: Any, flatten: bool = False, unroll: frozenset[str] = frozenset()
) -> Any:
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
        if isinstance(kwargs.get("mask"), _Mask):
            kwargs.pop("mask")  # tf_keras passes the Embedding / Masking twin's own mask
        for value in [*args, *kwargs.values()]:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, _Mask):
                    raise ConversionError(
                        f"the tf_keras bridge cannot rebuild operation {item.op_name!r}: a mask used as a value "
                        f"(by {getattr(op, 'name', op)!r}); only masks that Embedding(mask_zero=True) or Masking "
                        "pass to the layers after them are rebuilt"
                    )
        return op(*args, **kwargs)

    outputs = graph._run_through_graph(inputs if len(inputs) > 1 else inputs[0], operation_fn=operation, call_fn=call)
    return tf_keras.Model(inputs, outputs, name=model.name)


def _weights(layer: Any) -> list[np.ndarray]:
    """The weights ``layer`` computes with, as float32 arrays.

    A Keras 3 Normalization computes with the mean and variance it snapshot
    when built, adapted or loaded; ``set_weights`` does not refresh them, so
    those are what its twin gets.
    """
    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    if type(layer).__name__ == "Normalization" and getattr(layer, "input_mean", None) is None and len(weights) == 3:
        snapshot = (layer.mean, layer.variance)
        weights[:2] = [
            np.reshape(np.asarray(t, np.float32), w.shape) for t, w in zip(snapshot, weights[:2], strict=True)
        ]
    return weights


def _copy_weights(source: Any, made: dict[int, Any]) -> None:
    for layer in source._flatten_layers(include_self=False, recursive=True):
        twin = made.get(id(layer))
        if twin is not None and layer.weights and not hasattr(layer, "_run_through_graph"):
            twin.set_weights(_weights(layer))


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
    GRU and SimpleRNN layers, and the LSTMs of a masked model (static sequence
    length only): the route their int8 conversion survives. A masked model's
    parity is also checked on the sample padded over its second half. Raises
    :class:`ConversionError` naming the layer it cannot rebuild, or when
    parity exceeds 1e-4 relative to max(1, |output|).

    Example:
        >>> legacy, diff = to_tf_keras(model, [x])  # doctest: +SKIP
        >>> diff < 1e-4  # doctest: +SKIP
        True
    """
    import tf_keras

    made: dict[int, Any] = {}
    mask_value = padding_value(model)
    legacy = _rebuild(model, made, tf_keras, flatten, frozenset(unrolled_classes(model) if unroll else ()))
    _copy_weights(model, made)
    if sample is None:
        rng = np.random.default_rng(0)
        sample = [rng.standard_normal([d or 2 for d in t.shape]).astype(np.float32) for t in model.inputs]
    if mask_value is not None:  # the mask must mean the same in both graphs: pad the sample's second half too
        padded = [np.array(x) for x in sample]
        for x in padded:
            x[:, x.shape[1] // 2 :] = mask_value
        sample = [np.concatenate(pair) for pair in zip(sample, padded, strict=True)]
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


def recalibrate_batchnorm(legacy: Any, x: np.ndarray, batch_size: int = 32) -> list[str]:
    """Re-estimate every BatchNorm's moving mean and variance on ``x`` (forward passes only, no weight update);
    return the layers' names.

    Pruning shrinks each convolution's output while the frozen BatchNorm after it keeps normalizing with the
    statistics of the dense weights; through a deep network the error compounds (ResNet50 fell from 0.76 to
    chance after one epoch at 50 %). The cumulative average over all batches replaces them, as AdaBN does.

    Example:
        >>> recalibrate_batchnorm(pruned, x_train)[:1]  # doctest: +SKIP
        ['conv1_bn']
    """
    import tf_keras

    layers = [layer for layer in legacy.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    if not layers:
        return []
    saved = [(layer.trainable, layer.momentum) for layer in layers]
    for layer in layers:
        layer.trainable = True  # a frozen BatchNorm runs in inference mode and updates nothing
    try:
        for step, start in enumerate(range(0, len(x), batch_size)):
            for layer in layers:
                layer.momentum = step / (step + 1)  # cumulative average: every batch weighs the same
            legacy(x[start : start + batch_size], training=True)
    finally:
        for layer, (trainable, momentum) in zip(layers, saved, strict=True):
            layer.trainable, layer.momentum = trainable, momentum
    return [layer.name for layer in layers]


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
        # RNN cells share names across layers (every LSTM's cell is 'lstm_cell'); their layer copies their weights
        if twin is None or not layer.weights or _is_functional(layer) or type(layer).__name__.endswith("Cell"):
            continue
        weights = twin.get_weights()
        if [w.shape for w in weights] != [tuple(w.shape) for w in layer.weights]:
            raise ConversionError(f"layer {layer.name!r}: the optimized weights do not fit the source model")
        layer.set_weights(weights)
        if type(layer).__name__ == "Normalization":
            layer.finalize_state()  # Keras 3 computes with a mean/variance snapshot that set_weights leaves stale
        copied.append(layer.name)
    return copied

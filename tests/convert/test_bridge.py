"""The Keras 3 → tf_keras bridge: the common layers rebuild with the same outputs, and weights go back."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.converters.bridge import copy_weights_back, fold_batchnorm, to_tf_keras
from edgekit.errors import ConversionError

pytestmark = pytest.mark.slow  # every test builds Keras models and rebuilds them in tf_keras


def _image_model():
    import keras

    inputs = keras.Input((20, 20, 3))
    h = keras.layers.Resizing(16, 16)(inputs)
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(h)
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    b = keras.layers.DepthwiseConv2D(3, padding="same")(a)
    b = keras.layers.BatchNormalization()(b)
    b = keras.layers.ReLU(6.0)(b)
    c = keras.layers.SeparableConv2D(8, 3, padding="same")(a)
    h = keras.layers.Add()([b, c])
    h = keras.layers.Concatenate()([h, keras.layers.Multiply()([b, c])])
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, activation="gelu")(h)
    h = keras.layers.Reshape((4, 4))(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Activation("softmax")(h)), (4, 20, 20, 3)


def _sequence_model():
    import keras

    inputs = keras.Input((12, 3))
    h = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True))(h)
    h = keras.layers.GRU(6, return_sequences=True)(h)
    h = keras.layers.TimeDistributed(keras.layers.Dense(4))(h)
    h = keras.layers.LSTM(5)(h)
    h = keras.layers.LeakyReLU()(keras.layers.Dense(3)(h))
    return keras.Model(inputs, h), (4, 12, 3)


def _nested_model():
    import keras

    inner_in = keras.Input((10,))
    inner = keras.Model(inner_in, keras.layers.Dense(6, activation="relu", name="inner_dense")(inner_in), name="base")
    inputs = keras.Input((10,))
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(inputs, training=False))), (4, 10)


@pytest.mark.parametrize("build", [_image_model, _sequence_model, _nested_model])
@pytest.mark.parametrize("flatten", [False, True])
def test_common_layers_rebuild_with_parity(build, flatten):
    model, shape = build()
    model.set_weights([w + 0.01 for w in model.get_weights()])  # non-trivial BN statistics too
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 50
    legacy, diff = to_tf_keras(model, [x], flatten=flatten)
    assert type(legacy).__module__.startswith("tf_keras") and diff <= 1e-4, diff
    if flatten:
        assert not any(hasattr(layer, "layers") for layer in legacy.layers)  # nested models inlined for TFMOT


def test_weights_go_back_into_the_keras3_model():
    model, shape = _nested_model()
    legacy, _ = to_tf_keras(model, flatten=True)
    legacy.get_layer("inner_dense").set_weights([np.zeros((10, 6), np.float32), np.ones(6, np.float32)])
    copied = copy_weights_back(legacy, model)
    assert {"inner_dense", "head"} <= set(copied)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(model(x), legacy(x), rtol=1e-5, atol=1e-5)


def test_batchnorm_folds_into_the_layer_before_it():
    import keras

    keras.utils.set_random_seed(0)  # the kernels too: with unseeded ones, one CI run in a few exceeded 1e-4
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.BatchNormalization(name="bn1")(keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs))
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(h)
    h = keras.layers.BatchNormalization(center=False, name="bn2")(h)  # the shift goes into dw's bias
    h = keras.layers.BatchNormalization(name="bn3")(keras.layers.ReLU()(h))  # after an activation: not foldable
    h = keras.layers.Dense(5, name="dense")(keras.layers.Flatten()(h))
    outputs = keras.layers.BatchNormalization(name="bn4")(h)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):  # statistics far from the identity
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) for w in layer.weights])
    x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
    legacy, _ = to_tf_keras(model, [x])

    assert fold_batchnorm(legacy, [x]) == ["conv", "dw", "dense"]
    assert np.all(legacy.get_layer("bn1").gamma.numpy() == 1) and np.all(legacy.get_layer("bn3").gamma.numpy() != 1)
    np.testing.assert_allclose(legacy(x), model(x), rtol=1e-4, atol=1e-4)
    copy_weights_back(legacy, model)  # the Keras 3 model keeps its layers; its BatchNorms now only shift
    np.testing.assert_allclose(model(x), legacy(x), rtol=1e-5, atol=1e-5)


def test_a_custom_layer_runs_as_it_is_on_the_same_variables():
    import keras

    class ScaleShift(keras.layers.Layer):
        def build(self, shape):
            self.shift = self.add_weight(shape=(shape[-1],), initializer="ones", name="shift")

        def call(self, x):
            return 2.0 * x + self.shift

    inputs = keras.Input((4,))
    model = keras.Model(inputs, ScaleShift(name="scale_shift")(keras.layers.Dense(3)(inputs)))
    legacy, diff = to_tf_keras(model, [np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)])
    assert diff == 0.0
    twin = legacy.get_layer("scale_shift")
    assert type(legacy).__module__.startswith("tf_keras") and len(twin.weights) == 1
    model.get_layer("scale_shift").shift.assign(np.full(3, 5.0, np.float32))  # one set of variables, not a copy
    assert np.array_equal(twin.get_weights()[0], np.full(3, 5.0, np.float32))


def test_refuses_an_operation_it_cannot_rebuild_by_name():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.ops.mean(keras.layers.Dense(2)(inputs), axis=-1, keepdims=True))
    with pytest.raises(ConversionError, match=r"cannot rebuild operation '\w+' \(Mean\)"):
        to_tf_keras(model)


def _perturb_batchnorm(model, rng):
    """BatchNorm statistics far from the identity, so every block's output shows in the parity."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.weights])


# Small inputs and widths: each rebuild takes a few seconds on 2 cores. Tops give logits: random weights make them
# large enough that a softmax saturates, turning float32 rounding of the logits into output differences over 1e-5.
APPLICATIONS = {
    "MobileNetV3Small": lambda keras: keras.applications.MobileNetV3Small(
        input_shape=(64, 64, 3), alpha=0.75, include_top=False, weights=None
    ),
    "MobileNetV3Large": lambda keras: keras.applications.MobileNetV3Large(
        input_shape=(64, 64, 3),
        alpha=0.75,
        minimalistic=True,
        include_top=True,
        classes=5,
        weights=None,
        classifier_activation=None,
    ),
    "EfficientNetB0": lambda keras: keras.applications.EfficientNetB0(
        input_shape=(64, 64, 3), include_top=False, weights=None
    ),
    "EfficientNetV2B0": lambda keras: keras.applications.EfficientNetV2B0(
        input_shape=(64, 64, 3), include_top=True, classes=5, weights=None, classifier_activation=None
    ),
}


@pytest.mark.parametrize("family", list(APPLICATIONS))
@pytest.mark.parametrize("flatten", [False, True])
def test_keras_applications_rebuild_with_parity(family, flatten):
    import keras

    keras.utils.set_random_seed(3)  # random deep nets reach |logits| ~ 1e3, float32 noise ~ 1e-6 relative: fix them
    rng = np.random.default_rng(3)
    model = APPLICATIONS[family](keras)
    _perturb_batchnorm(model, rng)
    if flatten:  # as a transfer model: the application nested inside, inlined by the bridge
        inputs = keras.Input((64, 64, 3))
        h = model(inputs, training=False)
        h = keras.layers.GlobalAveragePooling2D()(h) if len(h.shape) == 4 else h
        model = keras.Model(inputs, keras.layers.Dense(3)(h))
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    legacy, diff = to_tf_keras(model, [x], flatten=flatten)
    reference = np.asarray(model(x, training=False))
    assert type(legacy).__module__.startswith("tf_keras") and diff <= 1e-5 * max(1.0, np.abs(reference).max()), diff
    assert np.std(reference) > 1e-3  # not a trivially constant output


def _activation_models(activation):
    """Two tiny models using ``activation``: as an Activation layer, and as a Dense layer's ``activation=``."""
    import keras

    inputs = keras.Input((401,))
    as_layer = keras.Model(inputs, keras.layers.Activation(activation, name="act")(inputs))
    h = keras.layers.Reshape((401, 1))(inputs)
    as_argument = keras.Model(inputs, keras.layers.Dense(3, activation=activation, name="act")(h))
    return as_layer, as_argument


@pytest.mark.parametrize(
    "activation",
    [
        *("hard_silu", "hard_swish", "hard_sigmoid", "swish", "silu", "gelu", "approximate_gelu"),
        *("hard_tanh", "log_sigmoid", "celu", "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus"),
        *("sparse_plus", "sparse_sigmoid", "relu6", "leaky_relu", "mish"),
    ],
)
def test_keras3_activations_keep_their_semantics(activation):
    import keras

    fn = keras.ops.gelu if activation == "approximate_gelu" else activation  # approximate, serialized as "gelu"
    x = np.linspace(-8, 8, 401, dtype=np.float32)[None]
    for model in _activation_models(fn):
        legacy, diff = to_tf_keras(model, [x])
        assert diff <= 1e-6, (activation, diff)
        np.testing.assert_allclose(legacy(x), model(x), atol=1e-6)


def test_hard_sigmoid_is_the_keras3_one():
    model, _ = _activation_models("hard_sigmoid")
    legacy, _ = to_tf_keras(model)
    x = np.linspace(-4, 4, 401, dtype=np.float32)[None]
    np.testing.assert_allclose(legacy(x), np.clip(x / 6 + 0.5, 0, 1), atol=1e-6)  # tf_keras's own: clip(0.2x + 0.5)


def test_rebuilt_activations_survive_cloning_and_pruning():
    import keras
    import tensorflow_model_optimization as tfmot
    import tf_keras

    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, activation="hard_silu")(inputs)
    se = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    se = keras.layers.Conv2D(8, 1, activation="hard_sigmoid")(se)
    h = keras.layers.Multiply()([h, se])
    h = keras.layers.Activation("hard_swish")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation=keras.ops.gelu)(h))
    x = np.random.default_rng(4).standard_normal((2, 16, 16, 3)).astype(np.float32)
    legacy, _ = to_tf_keras(model, [x])

    clone = tf_keras.models.clone_model(legacy)  # from_config(get_config()): what TFMOT's wrappers do
    clone.set_weights(legacy.get_weights())
    np.testing.assert_allclose(clone(x), model(x), atol=1e-6)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(legacy)
    np.testing.assert_allclose(tfmot.sparsity.keras.strip_pruning(pruned)(x), model(x), atol=1e-6)


def test_normalization_computes_what_the_keras3_layer_computes():
    import keras

    inputs = keras.Input((4, 4, 3))
    norm = keras.layers.Normalization()
    norm.adapt(np.random.default_rng(5).uniform(0, 255, (8, 4, 4, 3)))
    model = keras.Model(inputs, norm(keras.layers.Rescaling(0.5, offset=-3)(inputs)))
    norm.set_weights([np.ones(3), np.full(3, 4.0), np.array(8)])  # Keras 3 keeps computing with the adapted snapshot
    x = np.random.default_rng(6).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    _, diff = to_tf_keras(model, [x])
    assert diff <= 1e-5


def test_ops_nodes_rebuild_as_layers():
    import keras

    inputs = keras.Input((4,))
    a = keras.layers.Dense(4)(inputs)
    b = keras.layers.Dense(4)(inputs)
    outputs = [a + b, a * b - a, keras.ops.maximum(a, b), a * 0.5 + 3.0, 3.0 - a, a / 4.0, 2 * a]
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    legacy, diff = to_tf_keras(model, [x], flatten=True)
    assert diff <= 1e-5
    assert {type(layer).__name__ for layer in legacy.layers} == {"InputLayer", "Dense", "Add", "Multiply"} | {
        "Subtract", "Maximum", "Rescaling"
    }  # fmt: skip


def test_refuses_ops_and_activations_it_cannot_rebuild_by_name():
    import keras

    inputs = keras.Input((4,))
    with pytest.raises(ConversionError, match=r"operation 'mean\w*' \(Mean\)"):
        to_tf_keras(keras.Model(inputs, keras.ops.mean(keras.layers.Dense(4)(inputs), axis=-1)))
    with pytest.raises(ConversionError, match=r"operation '\w+' \(TrueDivide\)"):
        to_tf_keras(keras.Model(inputs, 2.0 / keras.layers.Dense(4)(inputs)))

    @keras.saving.register_keras_serializable(package="edgekit_tests")
    def cube(x):
        return x * x * x

    with pytest.raises(ConversionError, match=r"layer 'cubed'.*custom activation"):
        to_tf_keras(keras.Model(inputs, keras.layers.Dense(2, activation=cube, name="cubed")(inputs)))

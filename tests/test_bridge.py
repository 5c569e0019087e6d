"""The Keras 3 → tf_keras bridge: the common layers rebuild with the same outputs, and weights go back."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.converters.bridge import copy_weights_back, fold_batchnorm, to_tf_keras
from edgekit.errors import ConversionError


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
    np.testing.assert_allclose(model(x), legacy(x), atol=1e-6)


def test_batchnorm_folds_into_the_layer_before_it():
    import keras

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
    np.testing.assert_allclose(model(x), legacy(x), atol=1e-6)


def test_refuses_a_layer_it_cannot_rebuild_by_name():
    import keras

    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Doubler(name="doubler")(keras.layers.Dense(2)(inputs)))
    with pytest.raises(ConversionError, match=r"layer 'doubler' \(Doubler\)"):
        to_tf_keras(model)

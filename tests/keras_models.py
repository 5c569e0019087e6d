"""Small real Keras 3 models for the conversion tests, trained in seconds on real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def digits_images(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 handwritten digits, upscaled to size×size×3 in 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.float32) * (255.0 / 16.0)
    x = np.kron(x, np.ones((size // 8, size // 8), np.float32))[..., None].repeat(3, axis=-1)
    return x, digits.target.astype(np.int64)


def mobilenet_digits(path: Path, classes: int = 4, epochs: int = 2) -> tuple[Path, np.ndarray]:
    """MobileNetV2 (α=0.35, 96×96) with Rescaling inside, briefly trained on four digit classes."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = digits_images()
    keep = y < classes
    x, y = x[keep], y[keep]
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, include_top=False)
    inputs = keras.Input((96, 96, 3), name="image")
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    h = base(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def stacked_lstm(path: Path) -> tuple[Path, np.ndarray]:
    """Two stacked LSTMs forecasting the next value of a noisy sine, fixed window of 24."""
    import keras

    keras.utils.set_random_seed(0)
    t = np.arange(3000, dtype=np.float32)
    series = np.sin(t / 8) + 0.1 * np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    windows = np.stack([series[i : i + 25] for i in range(0, len(series) - 25, 3)])
    x, y = windows[:, :24, None], windows[:, 24:]
    model = keras.Sequential(
        [
            keras.Input((24, 1)),
            keras.layers.LSTM(24, return_sequences=True),
            keras.layers.LSTM(12),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", "mse")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def causal_conv_forecaster(path: Path, padding: str = "causal") -> tuple[Path, np.ndarray]:
    """A dilated causal Conv1D front end (kernel 3, dilation 2) before an LSTM, forecasting the next value of a
    noisy sine from windows of 24 (``padding="same"``: the same model, but each step reads the future)."""
    import keras

    keras.utils.set_random_seed(0)
    t = np.arange(3000, dtype=np.float32)
    series = np.sin(t / 8) + 0.1 * np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    windows = np.stack([series[i : i + 25] for i in range(0, len(series) - 25, 3)])
    x, y = windows[:, :24, None], windows[:, 24:]
    inputs = keras.Input((24, 1), name="series")
    h = keras.layers.Conv1D(8, 3, padding=padding, dilation_rate=2, activation="relu", name="front")(inputs)
    h = keras.layers.LSTM(12, name="memory")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="next")(h))
    model.compile("adam", "mse")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def dense_autoencoder(path: Path) -> tuple[Path, np.ndarray]:
    """A dense autoencoder over scikit-learn's breast-cancer features (standardized)."""
    import keras
    from sklearn.datasets import load_breast_cancer

    keras.utils.set_random_seed(0)
    x = load_breast_cancer().data.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    model = keras.Sequential([
        keras.Input((30,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(16, activation="relu"), keras.layers.Dense(30),
    ])  # fmt: skip
    model.compile("adam", "mse")
    model.fit(x, x, epochs=20, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def two_inputs_two_heads(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Digits as 64 pixel features plus 6 integer token ids; a box head (4 values) and a class head (5 classes).

    The Keras output order (box, cls) is the reverse of the name-sorted order TFLite tends to use, and
    the token input is int32 through an Embedding: both break a converter that works by position or casts.
    """
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = load_digits()
    keep = digits.target < 5
    x = (digits.data[keep] / 16.0).astype(np.float32)
    y = digits.target[keep]
    rng = np.random.default_rng(0)
    tokens = (rng.integers(0, 40, (len(y), 6)) + 40 * (y[:, None] % 2)).astype(np.int32)
    box = np.stack([x[:, :16].mean(1), x[:, 16:32].mean(1), x[:, 32:48].mean(1), x[:, 48:].mean(1)], axis=1)
    features = keras.Input((64,), name="features")
    token_ids = keras.Input((6,), dtype="int32", name="tokens")
    e = keras.layers.Flatten()(keras.layers.Embedding(80, 4)(token_ids))
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([features, e]))
    model = keras.Model(
        [features, token_ids],
        [keras.layers.Dense(4, name="box")(h), keras.layers.Dense(5, activation="softmax", name="cls")(h)],
    )
    model.compile("adam", ["mse", "sparse_categorical_crossentropy"])
    model.fit([x, tokens], [box, y], epochs=30, batch_size=32, verbose=0)
    model.save(path)
    return path, {"features": x, "tokens": tokens}


def transformer_digits(path: Path) -> tuple[Path, np.ndarray]:
    """A transformer block over the 8 rows of each digit: MultiHeadAttention, LayerNormalization, GELU (erf, tanh)."""
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target
    rows = keras.Input((8, 8), name="rows")
    h = keras.layers.Dense(16)(rows)
    h = keras.layers.LayerNormalization()(h + keras.layers.MultiHeadAttention(2, 8)(h, h))
    ff = keras.layers.Dense(32, activation="gelu")(h)  # exact GELU: erfc in TensorFlow
    ff = keras.layers.Dense(16, activation=keras.activations.gelu)(ff)
    h = keras.layers.LayerNormalization()(h + ff)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    tanh_gelu = keras.layers.Dense(32)(pooled)  # GELU's tanh form, written out
    tanh_gelu = 0.5 * tanh_gelu * (1 + keras.ops.tanh(0.7978845608 * (tanh_gelu + 0.044715 * tanh_gelu**3)))
    model = keras.Model(rows, keras.layers.Dense(10, activation="softmax", name="digit")(tanh_gelu))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def digits_rows_rnn(path: Path, layer: str) -> tuple[Path, np.ndarray]:
    """A GRU or SimpleRNN reading each digit as 8 steps of 8 pixels, classifying ten digits."""
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target
    cell = {"gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}[layer]
    model = keras.Sequential([keras.Input((8, 8)), cell(32), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def application_classifier(path: Path, family: str, size: int = 32, classes: int = 5) -> tuple[Path, np.ndarray]:
    """A ``keras.applications`` base (random init) with a softmax head, trained two epochs on digits at size×size."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = digits_images(size)
    keep = y < classes
    x, y = x[keep], y[keep]
    base = getattr(keras.applications, family)(input_shape=(size, size, 3), weights=None, include_top=False)
    image = keras.Input((size, size, 3), name="image")
    h = keras.layers.GlobalAveragePooling2D()(base(keras.layers.Rescaling(1 / 127.5, offset=-1)(image)))
    model = keras.Model(image, keras.layers.Dense(classes, activation="softmax", name="probs")(h))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def padded_digit_tokens(seed: int = 0, length: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each digit's 64 pixels as tokens 1..17, placed at a random offset in ``length`` steps of padding (0).

    Returns the padded tokens, the labels and the offsets.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, length - 64 + 1, len(digits.target))
    tokens = np.zeros((len(digits.target), length), np.int32)
    for row, (pixels, offset) in enumerate(zip(digits.data.astype(np.int32) + 1, offsets, strict=True)):
        tokens[row, offset : offset + 64] = pixels
    return tokens, digits.target.astype(np.int64), offsets


def masked_token_lstm(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """The textbook masked sequence classifier: ``Embedding(mask_zero=True) → LSTM → Dense`` on padded tokens.

    Returns the saved path, the padded tokens and the labels.
    """
    import keras

    keras.utils.set_random_seed(0)
    tokens, labels, _ = padded_digit_tokens()
    model = keras.Sequential([
        keras.Input((tokens.shape[1],), dtype="int32", name="tokens"),
        keras.layers.Embedding(18, 8, mask_zero=True),
        keras.layers.LSTM(24),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(tokens, labels, epochs=4, batch_size=64, verbose=0)
    model.save(path)
    return path, tokens, labels


def grouped_conv_digits(path: Path) -> tuple[Path, np.ndarray]:
    """A ConvNeXt-style block (a 7×7 depthwise ``Conv2D(groups=C)``, LayerNorm, inverted MLP) and a ResNeXt-style
    ``Conv2D(groups=4)`` on 16×16 digits; the grouped convolutions are what tf2onnx could not inline."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = digits_images(16)
    inputs = keras.Input((16, 16, 3), name="image")
    stem = keras.layers.Conv2D(16, 2, strides=2, name="stem")(keras.layers.Rescaling(1 / 255)(inputs))
    h = keras.layers.Conv2D(16, 7, padding="same", groups=16, name="depthwise")(stem)
    h = keras.layers.LayerNormalization(epsilon=1e-6)(h)
    h = keras.layers.Dense(16, name="project")(keras.layers.Dense(64, activation="gelu")(h))
    h = keras.layers.Add()([stem, h])
    h = keras.layers.Conv2D(16, 3, padding="same", groups=4, activation="relu", name="grouped")(h)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs, name="grouped")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    model.save(path)
    return path, x


def digit_cnn(
    path: Path, *, tutorial: bool = False, size: int = 32, classes: int = 4
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small CNN on scikit-learn's digits (classes 0..3), trained in seconds; returns its path, pixels and labels.

    ``tutorial=False``: trained on pixels / 255 with no scaling layer, softmax out (the published person
    detector's layout). ``tutorial=True``: the Keras image tutorial's layout: augmentation layers, then
    ``Rescaling(1/255)``, then ``Dense(n)`` trained with ``from_logits=True``.
    """
    import keras

    keras.utils.set_random_seed(0)
    x, y = digits_images(size)
    keep = y < classes
    x, y = x[keep], y[keep]
    head = [keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.05), keras.layers.Rescaling(1 / 255)]
    body = [
        keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes, activation=None if tutorial else "softmax"),
    ]  # fmt: skip
    model = keras.Sequential([keras.Input((size, size, 3), name="image"), *(head if tutorial else []), *body])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=tutorial)
    model.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    model.fit(x if tutorial else x / 255.0, y, epochs=25, batch_size=32, verbose=0)
    model.save(path)
    return path, x, y


def lossy_int8_classifier(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Two features of very different scales decide the class together: full int8 (one input scale, per-channel
    weights) rounds the small one away, so its int8 file disagrees with Keras on many samples. Weights are set,
    not trained."""
    import keras

    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(-1000, 1000, 600), rng.uniform(-1, 1, 600)], axis=1).astype(np.float32)
    inputs = keras.Input((2,), name="features")
    outputs = keras.layers.Dense(2, activation="softmax", name="probs")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("probs").set_weights([np.array([[1e-3, -1e-3], [1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    y = (x[:, 0] * 1e-3 + x[:, 1] < 0).astype(np.int64)
    model.save(path)
    return path, x, y


def ssd_quadrants(folder: Path) -> Path:
    """A detector ending in TFLite's detection post-processing op, as TF's object-detection export makes them (an
    ``experimental_implements`` function the converter fuses into the custom op): one anchor per image quadrant,
    class scores the quadrant's mean red and green pixel / 255 (classes 0 and 1 after the background)."""
    import tensorflow as tf

    anchors = np.array([[0.25, 0.25, 0.5, 0.5], [0.25, 0.75, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5],
                        [0.75, 0.75, 0.5, 0.5]], np.float32)  # fmt: skip
    attrs = {"max_detections": 4, "max_classes_per_detection": 1, "detections_per_class": 4, "num_classes": 2,
             "nms_score_threshold": 0.3, "nms_iou_threshold": 0.5, "y_scale": 10.0, "x_scale": 10.0,
             "h_scale": 5.0, "w_scale": 5.0}  # fmt: skip
    kind = {int: "i", float: "f"}
    implements = 'name: "TFLite_Detection_PostProcess" attr { key: "use_regular_nms" value { b: false } } ' + " ".join(
        f'attr {{ key: "{k}" value {{ {kind[type(v)]}: {v} }} }}' for k, v in attrs.items()
    )

    @tf.function(experimental_implements=implements)
    def postprocess(box_encodings, class_predictions, anchor):  # replaced by the custom op when converted
        return tuple(tf.constant(0.0, name=n) for n in ("boxes", "classes", "scores", "num_detections"))

    @tf.function(input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.float32, name="image")])
    def serve(image):
        quads = tf.stack([image[:, :32, :32], image[:, :32, 32:], image[:, 32:, :32], image[:, 32:, 32:]], axis=1)
        means = tf.reduce_mean(quads, axis=[2, 3]) / 255.0
        scores = tf.concat([tf.zeros([1, 4, 1]), means[..., :2]], axis=-1)
        return postprocess(tf.zeros([1, 4, 4]), scores, tf.constant(anchors))

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(folder / "saved"), signatures={"serving_default": serve.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    converter.allow_custom_ops = True
    path = folder / "ssd_quadrants.tflite"
    path.write_bytes(converter.convert())
    return path


def pose_head(path: Path) -> tuple[Path, np.ndarray]:
    """A MoveNet-shaped head: an image in, ``(1, 1, 17, 3)`` keypoints out (y, x, score in 0..1); untrained."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(h))
    outputs = keras.layers.Reshape((1, 17, 3), name="keypoints")(keras.layers.Dense(51, activation="sigmoid")(h))
    keras.Model(inputs, outputs).save(path)
    x, _ = digits_images(32)
    return path, x[:64]


def features_and_tokens(path: Path) -> Path:
    """A functional model with two named inputs, float ``features`` (4) and int32 ``tokens`` (8), and a softmax."""
    import keras

    keras.utils.set_random_seed(0)
    features = keras.Input((4,), name="features")
    tokens = keras.Input((8,), dtype="int32", name="tokens")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(tokens))
    merged = keras.layers.Concatenate()([keras.layers.Dense(4, activation="relu")(features), pooled])
    keras.Model([features, tokens], keras.layers.Dense(3, activation="softmax", name="probs")(merged)).save(path)
    return path


def small_lstm(path: Path) -> Path:
    """One LSTM over 12 steps of one channel, one value out (fused in TFLite: its state is a variable tensor)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 1), name="window"), keras.layers.LSTM(4), keras.layers.Dense(1)])
    model.save(path)
    return path


def sine_windows() -> tuple[np.ndarray, np.ndarray]:
    """Windows of 24 steps of a noisy sine (every 3rd start) and the next value after each."""
    t = np.arange(3000, dtype=np.float32)
    series = np.sin(t / 8) + 0.1 * np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    windows = np.stack([series[i : i + 25] for i in range(0, len(series) - 25, 3)])
    return windows[:, :24, None], windows[:, 24:]


def stateful_forecaster(path: Path) -> tuple[Path, np.ndarray]:
    """A ``stateful=True`` LSTM forecaster (batch fixed at 1), briefly trained on :func:`sine_windows`."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = sine_windows()
    model = keras.Sequential([keras.Input(batch_shape=(1, 24, 1), name="window"),
                              keras.layers.LSTM(16, stateful=True), keras.layers.Dense(1)])  # fmt: skip
    model.compile("adam", "mse")
    model.fit(x[:300], y[:300], batch_size=1, epochs=1, verbose=0, shuffle=False)
    model.save(path)
    return path, x


def explicit_state_twin(source: Path, path: Path) -> Path:
    """The stateful forecaster's twin with explicit state, as users write one: ``x, h, c -> y, h_out, c_out`` with
    the LSTM layer called over one step with ``initial_state``; the same weights."""
    import keras

    trained = keras.models.load_model(source)
    x, h, c = keras.Input((1, 1), name="x"), keras.Input((16,), name="h"), keras.Input((16,), name="c")
    lstm = keras.layers.LSTM(16, return_state=True)
    out, h_out, c_out = lstm(x, initial_state=[h, c])
    dense = keras.layers.Dense(1)
    y = dense(out)
    named = [keras.layers.Identity(name=n)(t) for n, t in (("y", y), ("h_out", h_out), ("c_out", c_out))]
    model = keras.Model([x, h, c], named)
    lstm.set_weights(trained.layers[0].get_weights())
    dense.set_weights(trained.layers[1].get_weights())
    model.save(path)
    return path

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

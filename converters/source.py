"""Load the Keras model a conversion starts from (build lane: imports Keras).

Handles ``.keras`` (safe_mode on unless ``unsafe``), legacy ``.h5``, SavedModel
directories (wrapped as a one-layer Keras model around their serving endpoint),
custom objects from a Python file, mixed-precision sources (rebuilt as
float32), and the route to take: recurrent models go through the tf_keras
bridge so they convert to the fused TFLite LSTM.

Example:
    >>> model = load_keras("model.keras", custom_objects="layers.py")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional"}


def custom_objects_from(path: str | Path | None) -> dict[str, Any]:
    """Every class and function defined in a Python file, by name (for ``custom_objects``).

    Example:
        >>> custom_objects_from(None)
        {}
    """
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: custom objects file not found")
    spec = importlib.util.spec_from_file_location(f"edgekit_custom_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:
        raise InputError(f"{path}: importing the custom objects failed: {type(exc).__name__}: {exc}") from None
    return {k: v for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "") == module.__name__}


def load_keras(path: str | Path, *, custom_objects: str | Path | None = None, unsafe: bool = False) -> Any:
    """Load a ``.keras`` / ``.h5`` model or a SavedModel directory, with clear errors for the usual failures.

    Example:
        >>> load_keras("model.txt")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: model.txt: not a Keras model (expected .keras, .h5, a SavedModel or a run directory)
    """
    p = Path(path)
    if p.is_dir() and (p / "saved_model.pb").is_file():
        return load_saved_model(p)
    if p.suffix not in (".keras", ".h5"):
        raise InputError(f"{path}: not a Keras model (expected .keras, .h5, a SavedModel or a run directory)")
    import keras

    objects = custom_objects_from(custom_objects)
    try:
        return keras.models.load_model(p, custom_objects=objects, compile=False, safe_mode=not unsafe)
    except Exception as exc:
        raise InputError(_explain_load_error(path, exc)) from None


def load_saved_model(path: str | Path) -> Any:
    """A single-input SavedModel as a Keras 3 model: one layer calling its ``serve`` or ``serving_default`` endpoint.

    ``serve`` is what ``keras.Model.export`` writes; ``serving_default`` is the
    signature ``tf.saved_model.save`` and tf_keras write (called with keyword
    arguments, returning a dict whose entries become the outputs in name order).

    Example:
        >>> load_saved_model("exported/").inputs[0].shape  # doctest: +SKIP
        (None, 30)
    """
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise InputError(f"{path}: TensorFlow cannot load this SavedModel: {str(exc).splitlines()[0][:200]}") from None
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise InputError(f"{path}: the SavedModel has no serving_default signature (found: {list(loaded.signatures)})")
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise InputError(f"{path}: only single-input SavedModels are supported (inputs: {', '.join(specs)})")
    (input_name, spec), *_ = specs.items()
    output_names = sorted(signature.structured_outputs)
    endpoint = "serve" if hasattr(loaded, "serve") else "serving_default"

    class SavedModelEndpoint(keras.layers.TFSMLayer):
        def call(self, inputs: Any, training: bool = False) -> Any:
            if endpoint == "serve":
                return self.call_endpoint_fn(inputs)
            outputs = self.call_endpoint_fn(**{input_name: inputs})
            return outputs[output_names[0]] if len(output_names) == 1 else [outputs[k] for k in output_names]

    inputs = keras.Input(batch_shape=tuple(spec.shape), name=input_name)
    return keras.Model(inputs, SavedModelEndpoint(str(path), call_endpoint=endpoint)(inputs), name=Path(path).name)


def _explain_load_error(path: str | Path, exc: Exception) -> str:
    text = str(exc)
    if "Lambda" in text and "safe_mode" in text:
        return (
            f"{path}: contains a Lambda layer, which Keras safe_mode refuses to load; "
            "pass --unsafe if you trust this file"
        )
    unknown = re.search(r"[Cc]ould not locate (?:class|function) '([^']+)'", text) or re.search(
        r"Unknown (?:layer|object)[^']*'([^']+)'", text
    )
    if unknown:
        return (
            f"{path}: unknown custom object {unknown.group(1)!r}; pass --custom-objects FILE.py "
            "(a Python file defining it) or register it with @keras.saving.register_keras_serializable"
        )
    if "zip" in text.lower() or "file signature" in text.lower() or "not a" in text.lower():
        return f"{path}: not a readable Keras model file ({text.splitlines()[0][:160]})"
    return f"{path}: Keras cannot load it: {type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def layer_classes(model: Any) -> set[str]:
    """Class names of every layer, nested models included."""
    return {type(layer).__name__ for layer in model._flatten_layers(include_self=False, recursive=True)}


def is_recurrent(model: Any) -> bool:
    """True when the model holds an RNN layer (it then converts through the tf_keras bridge)."""
    return bool(layer_classes(model) & RECURRENT)


def as_float32(model: Any) -> Any:
    """A float32 copy of a mixed-precision model (same weights); the model itself when already float32.

    Example:
        >>> as_float32(mixed_model).dtype_policy.name  # doctest: +SKIP
        'float32'
    """
    policies = {layer.dtype_policy.name for layer in model._flatten_layers(include_self=False, recursive=True)}
    if policies <= {"float32"}:
        return model
    config = model.get_config()

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in node:
                return "float32"
            return {
                k: ("float32" if k == "dtype" and isinstance(v, str) and "mixed" in v else scrub(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    clone = model.__class__.from_config(scrub(config))
    clone.set_weights([w.astype("float32") for w in model.get_weights()])
    return clone


def classify_task(model: Any) -> str:
    """``classifier`` when the last layer ends in softmax/sigmoid over several classes, else ``regressor``."""
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    units = model.outputs[0].shape[-1] if model.outputs else None
    return "classifier" if activation in ("softmax", "sigmoid") and units and units > 1 else "regressor"

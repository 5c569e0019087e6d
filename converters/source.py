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
import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.hints import with_hint
from edgekit.common.parity import TASKS
from edgekit.errors import InputError
from edgekit.runtime.specs import TensorSpec

log = logging.getLogger(__name__)

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


def load_keras(path: str | Path, *, custom_objects: str | Path | None = None, unsafe: bool = False,
               fixes: list[str] | None = None) -> Any:  # fmt: skip
    """Load a ``.keras`` / ``.h5`` model or a SavedModel directory, with clear errors for the usual failures.

    A Keras 2 file loads as it is: the config keys Keras 3 refuses are dropped where harmless
    (:mod:`edgekit.converters.keras2`), each fix appended to ``fixes``.

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
        raise InputError(
            with_hint(f"{path}: not a Keras model (expected .keras, .h5, a SavedModel or a run directory)", path)
        )
    import keras

    from edgekit.converters.keras2 import compat_objects, keras2_archive_version

    if p.suffix == ".keras" and (version := keras2_archive_version(p)):
        raise InputError(
            f"{path}: saved by Keras {version} (tf_keras) in the .keras format, which Keras 3 "
            "cannot read; save it as .h5 with that Keras (model.save('model.h5')) and convert that"
        )
    applied = [] if fixes is None else fixes
    objects = {**compat_objects(applied), **(custom_objects_from(custom_objects) or {})}
    try:
        model = keras.models.load_model(p, custom_objects=objects, compile=False, safe_mode=not unsafe)
    except Exception as exc:
        raise InputError(_explain_load_error(path, exc)) from None
    return as_functional(model)


def as_functional(model: Any) -> Any:
    """A subclassed ``keras.Model`` called once on inputs made from its build config, as a functional model.

    Inputs are named after the parameters of its ``call`` (one named input per key when it was built on a
    dict), the output after the model (or the keys of the dict it returns). Functional and Sequential models
    are returned as they are. Integer inputs cannot be told from the build config: they become float32.

    Example:
        >>> [t.name for t in as_functional(load_keras("tiny.keras")).inputs]  # doctest: +SKIP
        ['inputs']
    """
    import keras

    if hasattr(getattr(model, "_functional", None) or model, "_run_through_graph"):
        return model
    shape = (model.get_build_config() or {}).get("input_shape")
    if shape is None:
        raise InputError(
            f"{model.name!r} is a subclassed model ({type(model).__name__}) saved before it was built: call it "
            "once on a batch (or build it) before saving"
        )
    params = [n for n in inspect.signature(model.call).parameters if n not in ("training", "mask", "kwargs")]
    if isinstance(shape, dict):
        inputs: Any = {k: keras.Input(batch_shape=tuple(v), name=k) for k, v in shape.items()}
    elif shape and isinstance(shape[0], (list, tuple)):  # several positional inputs
        names = params if len(params) == len(shape) else [f"input_{i}" for i in range(len(shape))]
        inputs = [keras.Input(batch_shape=tuple(v), name=n) for v, n in zip(shape, names, strict=True)]
    else:
        inputs = keras.Input(batch_shape=tuple(shape), name=params[0] if params else "inputs")
    outputs = model(*inputs) if isinstance(inputs, list) else model(inputs)
    log.info("subclassed model %r (%s) wrapped as a functional model", model.name, type(model).__name__)
    return keras.Model(inputs, outputs, name=model.name)


def with_outputs(model: Any, names: str | None) -> Any:
    """The model ending at the outputs of the named layers (``--outputs z_mean,z_log_var``), found inside nested
    models too (a VAE's encoder); the model as it is without names.

    Example:
        >>> with_outputs(vae, "z_mean").output_names  # doctest: +SKIP
        ['z_mean']
    """
    if not names:
        return model
    import keras

    wanted = [n.strip() for n in names.split(",") if n.strip()]
    inputs, leaves = leaf_outputs(model)
    found = {leaf.name: leaf.output for leaf in leaves if not isinstance(leaf.output, list | tuple | dict)}
    if missing := [name for name in wanted if name not in found]:
        known = ", ".join(leaf.name for leaf in leaves[:12])
        raise InputError(f"--outputs: no single output of a layer {missing[0]!r} in {model.name!r} ({known}, ...)")
    outputs = [found[name] for name in wanted]
    return keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)


@dataclass
class Leaf:
    """A layer called on the model's inputs, nested models walked through: its output and the layers feeding it."""

    name: str
    layer: Any
    output: Any
    fed_by: list[str]


def leaf_outputs(model: Any) -> tuple[list[Any], list[Leaf]]:
    """Fresh inputs like the model's, and every layer the model calls (inside nested models too, in call order)
    with its output on them: each output connected to those inputs, so any of them can end a model.

    Example:
        >>> inputs, leaves = leaf_outputs(vae)  # doctest: +SKIP
        >>> [leaf.name for leaf in leaves][:3]  # doctest: +SKIP
        ['dense', 'z_mean', 'z_log_var']
    """
    import keras

    leaves: list[Leaf] = []
    producer: dict[int, str] = {}

    def operation(layer: Any) -> Any:
        graph = getattr(layer, "_functional", None) or layer
        if hasattr(graph, "_run_through_graph"):  # a model used as a layer
            return lambda *args, **kwargs: graph._run_through_graph(list(args), operation_fn=operation)

        def call(*args: Any, **kwargs: Any) -> Any:
            output = layer(*args, **kwargs)
            fed = [producer[id(t)] for t in keras.tree.flatten((args, kwargs)) if id(t) in producer]
            leaves.append(Leaf(layer.name, layer, output, fed))
            for t in keras.tree.flatten(output):
                producer[id(t)] = layer.name
            return output

        return call

    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=t.name) for t in model.inputs]
    graph = getattr(model, "_functional", None) or model
    graph._run_through_graph(inputs, operation_fn=operation)
    return inputs, leaves


def refuse_random_inference(model: Any, feeds: list[np.ndarray]) -> None:
    """Refuse a model that draws random numbers at inference (a VAE's sampling layer): no artifact can be checked
    against one draw. Two runs on the same inputs must agree; otherwise the first layer whose output differs is
    named, with the deterministic layers before it to pass to ``--outputs``.

    Example:
        >>> refuse_random_inference(vae, [x])  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: layer 'sampling' (Sampling) draws random numbers at inference ...
    """
    import keras

    feed = feeds if len(feeds) > 1 else feeds[0]
    first, second = (model(feed, training=False) for _ in range(2))
    first, second = (keras.tree.flatten(o) for o in (first, second))
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(first, second, strict=True))
    if diff == 0.0:
        return
    inputs, leaves = leaf_outputs(model)  # nested models too: a VAE's sampling layer sits in its encoder
    probe = keras.Model(inputs, [leaf.output for leaf in leaves])
    runs = [probe(list(feeds), training=False) for _ in range(2)]
    culprit, before = None, []
    for leaf, a, b in zip(leaves, *runs, strict=True):
        if all(
            np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(*map(keras.tree.flatten, (a, b)), strict=True)
        ):
            continue
        culprit, before = leaf.layer, leaf.fed_by
        break
    what = f"layer {culprit.name!r} ({type(culprit).__name__})" if culprit else f"model {model.name!r}"
    advice = (
        f"convert its deterministic path with --outputs {','.join(before)}" if before
        else "convert a deterministic path with --outputs LAYER"
    )  # fmt: skip
    raise InputError(
        f"{what} draws random numbers at inference (two runs on the same input differ by up to {diff:.3g}), so no "
        f"artifact can be checked against it: {advice}, and draw the noise in the app"
    )


def load_saved_model(path: str | Path) -> Any:
    """A single-input SavedModel as a Keras 3 model: one layer calling its ``serving_default`` signature.

    ``keras.Model.export``, ``tf.saved_model.save`` and tf_keras all write it (called with keyword arguments,
    returning a dict whose entries become the outputs in name order). Each output keeps its signature name, and
    the op its graph ends in (``Softmax``, ``Sigmoid``) tells the contract what it holds.

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
    activations = dict(zip(output_names, signature_output_ops(signature).values(), strict=False))

    class SavedModelEndpoint(keras.layers.TFSMLayer):
        def call(self, inputs: Any, training: bool = False) -> Any:
            outputs = self.call_endpoint_fn(**{input_name: inputs})
            return outputs[output_names[0]] if len(output_names) == 1 else [outputs[k] for k in output_names]

    class SavedModelOutput(keras.layers.Layer):
        """One output of the signature under its own name; ``activation_name``: what its graph ends in."""

        def __init__(self, activation_name: str = "", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.activation_name = activation_name

        def call(self, inputs: Any) -> Any:
            return inputs

    inputs = keras.Input(batch_shape=tuple(spec.shape), name=input_name)
    called = SavedModelEndpoint(str(path), call_endpoint="serving_default")(inputs)
    values = called if isinstance(called, list) else [called]
    outputs = [SavedModelOutput(_ACTIVATION_OPS.get(activations.get(k) or "", ""), name=k)(v)
               for k, v in zip(output_names, values, strict=True)]  # fmt: skip
    return keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=Path(path).name)


_ACTIVATION_OPS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}  # a graph op ending an output → its activation


def signature_output_ops(signature: Any) -> dict[str, str | None]:
    """The op type each output of a SavedModel signature ends in (through Identity ops and function calls), in the
    order of its sorted output names: ``Softmax``, ``Sigmoid``, ``BiasAdd``...

    Example:
        >>> signature_output_ops(tf.saved_model.load("exported").signatures["serving_default"])  # doctest: +SKIP
        {'identity': 'Softmax'}
    """
    library = {f.signature.name: f for f in signature.graph.as_graph_def().library.function}

    def resolve(function: Any, ref: str, depth: int = 0) -> str | None:
        name, _, rest = ref.partition(":")
        node = next((n for n in function.node_def if n.name == name), None)
        if node is None or depth > 30:
            return None
        if node.op in ("Identity", "IdentityN", "StopGradient"):
            return resolve(function, node.input[0], depth + 1)
        if node.op in ("StatefulPartitionedCall", "PartitionedCall"):
            inner = library.get(node.attr["f"].func.name)
            index = int(rest.rsplit(":", 1)[-1]) if rest else 0
            return resolve(inner, inner.ret[inner.signature.output_arg[index].name], depth + 1) if inner else None
        return node.op

    top = signature.function_def
    return {arg.name: resolve(top, top.ret[arg.name]) for arg in top.signature.output_arg}


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
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__  # Keras puts the reason last, after the whole config
    reason = reason.removeprefix("Exception encountered: ")
    return f"{path}: Keras cannot load it: {reason[:300]}"


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


_RUN_TASK_TYPES = {"classifier": "classifier", "forecaster": "forecaster", "anomaly_scorer": "regressor"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


def _io_name(name: str) -> str:
    """A Keras name as a TensorFlow / TFLite / ONNX tensor name (letters, digits, ``_.-``)."""
    cleaned = _SAFE_NAME.sub("_", name.split(":")[0])
    return cleaned if cleaned[:1].isalpha() else f"x_{cleaned}"


def input_specs(model: Any) -> list[TensorSpec]:
    """The model's inputs in Keras order: name, shape and dtype (integer inputs stay integer).

    Example:
        >>> [s.name for s in input_specs(model)]  # doctest: +SKIP
        ['features', 'tokens']
    """
    specs = []
    for tensor in model.inputs:
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        specs.append(TensorSpec(_io_name(tensor.name), tuple(tensor.shape), "float32" if "float" in dtype else dtype))
    if len({s.name for s in specs}) != len(specs):
        raise InputError(f"the model's inputs share a name: {[s.name for s in specs]}")
    return specs


STRING_LAYERS = ("TextVectorization", "StringLookup", "Hashing")


def refuse_string_inputs(model: Any, specs: list[TensorSpec]) -> None:
    """Refuse, in one line naming the layer that reads them and the way, a model whose inputs are strings: TFLite
    builtins and ONNX Runtime files take numbers (a ``TextVectorization`` inside fails the converter).

    Example:
        >>> refuse_string_inputs(text_model, input_specs(text_model))  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: input 'text' takes strings ...
    """
    strings = [s for s in specs if s.dtype == "string"]
    if not strings:
        return
    layers = model._flatten_layers(include_self=False)
    reader = next((layer for layer in layers if type(layer).__name__ in STRING_LAYERS), None)
    what = (f"layer {reader.name!r} ({type(reader).__name__}) turns them into token ids" if reader
            else "no layer here turns them into numbers")  # fmt: skip
    length = getattr(reader, "_output_sequence_length", None) or getattr(reader, "output_sequence_length", None)
    shape = f"1x{length}" if length else "1xLENGTH"
    raise InputError(
        f"input {strings[0].name!r} takes strings, which TFLite and ONNX files do not: {what}. Convert the model "
        f"after it (its layers from an integer keras.Input) with --input-shape NAME={shape}, and tokenize in the app "
        "with the vectorizer's vocabulary (get_vocabulary())"
    )


def with_input_shapes(specs: list[TensorSpec], text: str | None, batch: int) -> list[TensorSpec]:
    """The input specs with the shapes ``--input-shape [NAME=]1x128`` fixes (an open sequence length a target
    cannot run, fixed to the length the app feeds); each given dimension must match the model's where it is set.

    Example:
        >>> [s.shape for s in with_input_shapes([TensorSpec("tokens", (None, None), "int64")], "1x128", 1)]
        [(1, 128)]
    """
    from edgekit.contract import parse_named, parse_shape

    given = parse_named(text, "--input-shape")
    if None in given and len(specs) > 1:
        raise InputError(f"--input-shape: the model has inputs {[s.name for s in specs]}; give NAME=SHAPE for each")
    if unknown := [n for n in given if n is not None and n not in {s.name for s in specs}]:
        raise InputError(f"--input-shape: no input {unknown[0]!r} (inputs: {', '.join(s.name for s in specs)})")
    fixed = []
    for spec in specs:
        text_shape = given.get(spec.name, given.get(None))
        if text_shape is None:
            fixed.append(spec)
            continue
        shape = parse_shape(text_shape, f"--input-shape {spec.name}")
        if (
            len(shape) != len(spec.shape)
            or shape[0] != batch
            or any(d is not None and d != s for d, s in zip(spec.shape[1:], shape[1:], strict=True))
        ):
            model_shape = "x".join("?" if d is None else str(d) for d in spec.shape)
            raise InputError(f"--input-shape {spec.name}: {text_shape} does not fit the model's {model_shape} "
                             f"(batch {batch}, the set sizes kept)")  # fmt: skip
        fixed.append(TensorSpec(spec.name, shape, spec.dtype))
    return fixed


def output_names(model: Any) -> list[str]:
    """The model's output names in Keras order (``model.output_names``), as tensor names.

    Example:
        >>> output_names(model)  # doctest: +SKIP
        ['box', 'cls']
    """
    raw = getattr(model, "output_names", None)  # Functional; a Keras 3 Sequential has none
    if not raw:
        raw = [getattr(t, "_keras_history", [None])[0].name if getattr(t, "_keras_history", None) else f"output_{i}"
               for i, t in enumerate(model.outputs)]  # fmt: skip
    names = [_io_name(n) for n in raw]
    if len(set(names)) != len(names):
        raise InputError(f"the model's outputs share a name: {names}")
    return names


def _output_activation(model: Any, index: int) -> str:
    """The activation that produces output ``index`` (``softmax``, ``sigmoid``, ``linear``...), if visible."""
    history = getattr(model.outputs[index], "_keras_history", None)
    layer = history[0] if history else None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    if hasattr(layer, "activation_name"):  # a SavedModel's output: the op its graph ends in
        return layer.activation_name
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def output_kind(model: Any, index: int) -> tuple[str, str]:
    """How output ``index`` is read: ``classifier``, ``binary-classifier`` or ``regressor``, and why.

    Example:
        >>> output_kind(model, 0)  # doctest: +SKIP
        ('classifier', 'softmax over 5 classes')
    """
    activation = _output_activation(model, index)
    units = model.outputs[index].shape[-1]
    if "int" in str(model.outputs[index].dtype):
        return "regressor", "integer output (compared exactly)"
    if activation == "softmax" and units and units > 1:
        return "classifier", f"softmax over {units} classes"
    shape = tuple(model.outputs[index].shape[1:])
    if activation == "sigmoid" and len(shape) > 1:  # an image, mask or sequence of values, not a decision
        return "regressor", f"sigmoid over a {'×'.join(str(d) for d in shape)} map (values, not one decision)"
    if activation == "sigmoid":
        return "binary-classifier", f"sigmoid over {units} unit(s)"
    history = getattr(model.outputs[index], "_keras_history", None)
    if history and not activation and not hasattr(history[0], "_run_through_graph") and hasattr(history[0], "layers"):
        return "regressor", f"activation hidden inside subclassed model {history[0].name!r} (--task to say otherwise)"
    return "regressor", f"{activation or 'no'} activation"


def detect_task(
    model: Any,
    *,
    given: str | None = None,
    run_task: dict[str, Any] | None = None,
    kinds: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The model's task, how each named output is compared, and why.

    ``given`` (``--task``) wins; then the run directory's recorded task
    (``train`` knows a forecaster from a regressor); then the graph: several
    outputs → ``multi-head``; one output shaped like the single input →
    ``autoencoder``; softmax over several classes → ``classifier``; sigmoid →
    ``binary-classifier``; anything else → ``regressor``. ``kinds`` (from the model's contract: logits read
    from the compiled loss are a classifier's) replace the per-output kinds read from the graph.

    Example:
        >>> detect_task(model)["task"]  # doctest: +SKIP
        'classifier'
    """
    names = output_names(model)
    kinds = dict(kinds) if kinds else {name: output_kind(model, i) for i, name in enumerate(names)}
    if given is not None:
        if given not in TASKS:
            raise InputError(f"--task must be one of {', '.join(TASKS)}, got {given!r}")
        task, why = given, "given with --task"
        if given in ("classifier", "binary-classifier") and len(names) == 1:
            kinds[names[0]] = (given, "given with --task")
        elif given in ("regressor", "forecaster", "autoencoder"):
            kinds = {n: ("regressor", f"given with --task {given}") for n in names}
    elif run_task and run_task.get("type") in _RUN_TASK_TYPES:
        task, why = _RUN_TASK_TYPES[run_task["type"]], f"recorded by the run directory ({run_task['type']})"
    elif len(names) > 1:
        task, why = "multi-head", f"{len(names)} outputs"
    elif len(model.inputs) == 1 and tuple(model.inputs[0].shape[1:]) == tuple(model.outputs[0].shape[1:]):
        task, why = (
            "autoencoder",
            f"output shape equals input shape {tuple(model.inputs[0].shape[1:])} (reconstruction)",
        )
        kinds[names[0]] = ("regressor", "reconstruction")
    else:
        task, why = kinds[names[0]][0], kinds[names[0]][1]
    return {"task": task, "why": why, "outputs": {n: {"kind": k, "why": w} for n, (k, w) in kinds.items()}}


def serving_function(
    model: Any, batch: int, inputs: list[TensorSpec] | None = None, outputs: list[str] | None = None
) -> tuple[Any, Any]:
    """A static-batch ``tf.function`` taking the inputs by name and returning ``{output name: tensor}``.

    ``inputs`` / ``outputs`` name them (default: the model's own; a tf_keras
    rebuild passes its Keras 3 source's names).

    Inputs keep their Keras dtypes (int32 token ids stay int32). The second
    value is a ``tf.Module`` tracking the model's variables: the converters
    freeze only variables they find through it, and Keras 3 variables wrap a
    ``tf.Variable`` in ``.value`` (without it weights stay READ_VARIABLE ops).

    Example:
        >>> fn, holder = serving_function(model, batch=1)  # doctest: +SKIP
    """
    import tensorflow as tf

    specs = [tf.TensorSpec((batch, *s.shape[1:]), s.dtype, name=s.name) for s in inputs or input_specs(model)]
    names = outputs or output_names(model)

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> Any:
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        if isinstance(out, dict):
            out = [out[k] for k in model.output_names]
        outs = out if isinstance(out, (list, tuple)) else [out]
        return dict(zip(names, outs, strict=True))

    if type(model).__module__.startswith("tf_keras"):
        return serve, model  # tf_keras tracks its own tf.Variables
    holder = tf.Module()
    holder.variables_ = [v.value for v in model.weights]
    holder.serve = serve
    return serve, holder

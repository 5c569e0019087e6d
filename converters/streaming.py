"""A sequence model as a one-step model with its state as explicit inputs and outputs (build lane).

On a device a stream arrives one sample at a time; re-running a whole window at every sample wastes the work the
recurrent state already holds. :func:`to_streaming` rebuilds the model's graph for one timestep ``x``: per-step
layers (Dense, Normalization, activations, dropout, and joins such as Subtract or Multiply) as they are, through
nested models; each LSTM / GRU / SimpleRNN layer (stacked, with or without ``return_sequences``) as its cell with
its state as inputs (``<layer>_h``, and ``<layer>_c`` for an LSTM); each causal Conv1D with the last steps it
reads as its state (``<layer>_buffer``). It returns the step's output ``y`` and the next state under the same
names plus ``_next``, and converts like any feed-forward model (fp32, fp16, dynamic, int8, mixed, ONNX): no loop,
no variable tensor.

The rebuilt cells carry the layer's own weights; :func:`check_against_windows` proves the step model, run over
each window from zero state, gives the original model's outputs.

Example:
    >>> step, spec = to_streaming(keras.models.load_model("forecaster.keras"))  # doctest: +SKIP
    >>> [i.name for i in step.inputs]  # doctest: +SKIP
    ['x', 'lstm_h', 'lstm_c']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.contract import Contract
from edgekit.errors import InputError

CELLS = {"LSTM": ("h", "c"), "GRU": ("h",), "SimpleRNN": ("h",)}
# Layers that act on each timestep alone, so they apply to one step as they apply to a window.
PER_STEP = {"Dense", "Normalization", "Activation", "Dropout", "GaussianNoise", "GaussianDropout", "LayerNormalization",
            "BatchNormalization", "ReLU", "LeakyReLU", "ELU", "Softmax", "Identity", "Rescaling"}  # fmt: skip
NEXT = "_next"  # a state output's name is its input's name plus this


@dataclass
class StreamSpec:
    """The one-step model's I/O: the timestep input, the outputs, and each state input with its output."""

    step_input: str
    outputs: list[str]
    states: list[dict[str, Any]]  # {"input", "output", "layer", "shape"} (shape without the batch)

    def to_dict(self) -> dict[str, Any]:
        return {"step_input": self.step_input, "outputs": self.outputs, "states": self.states}


# Layers that join per-step tensors: a step of their output needs the same step of each input.
JOINS = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}


class _Walk:
    """Rebuilds a model's graph for one timestep: per-step layers cloned with their weights, each recurrent layer
    as its cell with the state as inputs and outputs, a nested model walked through the same way."""

    def __init__(self) -> None:
        self.state_in: list[Any] = []
        self.state_out: list[Any] = []
        self.states: list[dict[str, Any]] = []
        self.last_step: set[int] = set()  # ids of tensors that hold only a recurrent layer's last step

    def model(self, model: Any, inputs: list[Any]) -> list[Any]:
        graph = getattr(model, "_functional", None) or model  # a Sequential runs through its functional twin
        outputs = graph._run_through_graph(inputs, operation_fn=self.operation)
        return outputs if isinstance(outputs, list | tuple) else [outputs]

    def operation(self, layer: Any) -> Any:
        kind = type(layer).__name__
        if hasattr(getattr(layer, "_functional", None) or layer, "_run_through_graph"):  # a model used as a layer
            return lambda *args, **kwargs: _single(self.model(layer, list(args)))
        if kind in CELLS:
            return lambda h, **kwargs: self.recurrent(layer, h, kwargs)
        if _is_causal_conv(layer):
            return lambda h, **kwargs: self.causal_conv(layer, h)
        if kind in PER_STEP or kind in JOINS:
            return lambda *args, **kwargs: self.per_step(layer, kind, args, kwargs)
        before = _feeding_layer(layer)
        hint = f" (--outputs {before} converts the model up to the layer before it)" if before else ""
        raise InputError(f"--streaming: layer {layer.name!r} ({kind}) needs more than the current step{hint}; a "
                         f"stream model takes per-step layers ({', '.join(sorted(PER_STEP)[:6])}, ...) around "
                         "LSTM / GRU / SimpleRNN layers")  # fmt: skip

    def recurrent(self, layer: Any, h: Any, kwargs: dict[str, Any]) -> Any:
        import keras

        if kwargs.get("initial_state") is not None:
            raise InputError(f"--streaming: layer {layer.name!r} already takes its state as inputs; convert the "
                             "model as it is (without --streaming)")  # fmt: skip
        if getattr(layer, "go_backwards", False):
            raise InputError(f"--streaming: layer {layer.name!r} reads its sequence backwards; a stream only "
                             "goes forwards")  # fmt: skip
        if id(h) in self.last_step:
            raise InputError(f"--streaming: layer {layer.name!r} follows a recurrent layer that returns only "
                             "its last step")  # fmt: skip
        cell = type(layer.cell).from_config({**layer.cell.get_config(), "name": f"{layer.name}_cell"})
        names = [f"{layer.name}_{n}" for n in CELLS[type(layer).__name__]]
        ins = [keras.Input((layer.units,), name=n) for n in names]
        out, new = cell(h, ins if len(ins) > 1 else ins[0])
        cell.set_weights(layer.cell.get_weights())
        new = list(new) if isinstance(new, list | tuple) else [new]
        self.state_in += ins
        self.state_out += [keras.layers.Identity(name=n + NEXT)(s) for n, s in zip(names, new, strict=True)]
        self.states += [{"input": n, "output": n + NEXT, "layer": layer.name, "shape": [int(layer.units)]}
                        for n in names]  # fmt: skip
        if not layer.return_sequences:
            self.last_step.add(id(out))
        return out

    def causal_conv(self, layer: Any, h: Any) -> Any:
        """A causal Conv1D on one step: the last ``(kernel - 1) * dilation`` steps it reads are its state
        (``<layer>_buffer``), the new step joined on, the convolution applied once (``valid``)."""
        import keras

        config = layer.get_config()
        if config["strides"] not in (1, (1,), [1]):
            raise InputError(f"--streaming: layer {layer.name!r} (Conv1D) has strides {config['strides']}; a "
                             "stream takes one output per step (strides 1)")  # fmt: skip
        if id(h) in self.last_step:
            raise InputError(f"--streaming: layer {layer.name!r} follows a recurrent layer that returns only "
                             "its last step")  # fmt: skip
        dilation = config["dilation_rate"][0] if isinstance(config["dilation_rate"], list | tuple) else \
            config["dilation_rate"]  # fmt: skip
        width, features = (config["kernel_size"][0] - 1) * dilation, int(h.shape[-1])
        name = f"{layer.name}_buffer"
        window = keras.layers.Reshape((1, features))(h)
        if width:  # a kernel of one step remembers nothing
            buffer = keras.Input((width, features), name=name)
            window = keras.layers.Concatenate(axis=1)([buffer, window])
            self.state_in.append(buffer)
            self.state_out.append(keras.layers.Identity(name=name + NEXT)(keras.layers.Cropping1D((1, 0))(window)))
            self.states.append({"input": name, "output": name + NEXT, "layer": layer.name, "shape": [width, features]})
        clone = keras.layers.Conv1D.from_config({**config, "padding": "valid", "name": f"{layer.name}_step"})
        out = keras.layers.Reshape((config["filters"],))(clone(window))
        clone.set_weights(layer.get_weights())
        return out

    def per_step(self, layer: Any, kind: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        config = layer.get_config()
        if kind == "Concatenate" and config.get("axis") not in (-1, 2):
            raise InputError(f"--streaming: layer {layer.name!r} joins along axis {config.get('axis')}; a step "
                             "joins features only (axis -1)")  # fmt: skip
        clone = type(layer).from_config(config)
        out = clone(*args, **{k: v for k, v in kwargs.items() if k != "training"})
        clone.set_weights(layer.get_weights())
        if hasattr(clone, "finalize_state"):  # Normalization: the statistics it uses come from its weights here
            clone.finalize_state()
        flat = [t for a in args for t in (a if isinstance(a, list | tuple) else [a])]
        if any(id(t) in self.last_step for t in flat):
            self.last_step.add(id(out))
        return out


def _is_causal_conv(layer: Any) -> bool:
    return type(layer).__name__ == "Conv1D" and layer.get_config().get("padding") == "causal"


def _feeding_layer(layer: Any) -> str | None:
    """The name of the layer whose output ``layer`` takes (None: a model input, or several)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    tensors = nodes[0].input_tensors if nodes else []
    history = getattr(tensors[0], "_keras_history", None) if len(tensors) == 1 else None
    name = getattr(getattr(history, "operation", None), "name", None)
    return None if history is None or type(history.operation).__name__ == "InputLayer" else name


def _single(outputs: list[Any]) -> Any:
    return outputs[0] if len(outputs) == 1 else outputs


def to_streaming(model: Any) -> tuple[Any, StreamSpec]:
    """The one-step model of a recurrent sequence model, and its I/O (see the module docstring).

    The model's graph is rebuilt for one step, through nested models and layers that join per-step tensors
    (``Subtract``, ``Multiply``, ``Concatenate`` on features, ...): an autoencoder's reconstruction error streams
    like a forecaster. Refused in one line: no recurrent layer or causal Conv1D, a layer that needs more than the
    current step (a ``same`` or strided Conv1D, pooling, RepeatVector, Bidirectional, attention), a recurrent layer
    with ``go_backwards``, several inputs or outputs.

    Example:
        >>> to_streaming(dense_model)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --streaming needs a recurrent layer (LSTM, GRU, SimpleRNN); 'mlp' has none
    """
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"--streaming takes a model with one input and one output; {model.name!r} has "
                         f"{len(model.inputs)} and {len(model.outputs)}")  # fmt: skip
    if not any(type(layer).__name__ in CELLS or _is_causal_conv(layer) for layer in model._flatten_layers()):
        raise InputError(f"--streaming needs a recurrent layer (LSTM, GRU, SimpleRNN) or a causal Conv1D; "
                         f"{model.name!r} has none")  # fmt: skip
    shape = model.inputs[0].shape
    if len(shape) != 3:
        raise InputError(f"--streaming takes a sequence model (batch, steps, features); {model.name!r} takes "
                         f"{tuple(shape)}")  # fmt: skip
    x = keras.Input((shape[-1],), name="x")
    walk = _Walk()
    (h,) = walk.model(model, [x])
    y = keras.layers.Identity(name="y")(h)
    step = keras.Model([x, *walk.state_in], [y, *walk.state_out], name=f"{model.name}_streaming")
    return step, StreamSpec("x", ["y"], walk.states)


def is_stateful(model: Any) -> bool:
    """Whether a recurrent layer keeps its state between batches (``stateful=True``): it converts as streaming.

    Example:
        >>> is_stateful(keras.models.load_model("stateful_forecaster.keras"))  # doctest: +SKIP
        True
    """
    return any(getattr(layer, "stateful", False) for layer in model._flatten_layers())


def with_state_kinds(contract: Contract, spec: StreamSpec, window_reduce: dict[str, Any] | None = None) -> Contract:
    """The contract with the state inputs and outputs as kind ``state`` (and no note asking what they hold); a
    streaming scorer's ``y`` said to be each step's error, its score the window reduction the runtime applies.

    Example:
        >>> with_state_kinds(contract, spec).inputs[1].kind  # doctest: +SKIP
        'state'
    """
    names = {s["input"] for s in spec.states} | {s["output"] for s in spec.states}
    why = "recurrent state: feed each step's output back as the next step's input"
    errors = (
        (
            f"each step's squared error per channel; the anomaly score is their {window_reduce['kind']} over the "
            f"last {window_reduce['steps']} steps (postprocessing.window_reduce)"
        )
        if window_reduce
        else None
    )
    outputs = [dataclasses.replace(o, kind="state", why=why) if o.name in names
               else dataclasses.replace(o, kind="regression", why=errors) if errors and o.name == spec.outputs[0]
               else o for o in contract.outputs]  # fmt: skip
    quiet = names | ({spec.outputs[0]} if errors else set())
    return dataclasses.replace(
        contract,
        inputs=[dataclasses.replace(i, kind="state", range_source=why) if i.name in names else i
                for i in contract.inputs],
        outputs=outputs,
        notes=[n for n in contract.notes if not any(repr(name) in n for name in quiet)],
    )  # fmt: skip


def initial_state_layers(model: Any) -> list[str]:
    """Recurrent layers called with their state as inputs (``layer(x, initial_state=[h, c])``): a model with
    explicit state I/O written by hand.

    Example:
        >>> initial_state_layers(keras.models.load_model("explicit_state.keras"))  # doctest: +SKIP
        ['lstm']
    """
    found = []
    for layer in model._flatten_layers():
        nodes = getattr(layer, "_inbound_nodes", [])
        arguments = getattr(nodes[0], "arguments", None) if nodes else None
        if type(layer).__name__ in CELLS and arguments is not None and "initial_state" in arguments.kwargs:
            found.append(layer.name)
    return found


def zero_states(spec: StreamSpec, batch: int) -> list[np.ndarray]:
    """Every state at zero, for ``batch`` streams."""
    return [np.zeros((batch, *s["shape"]), np.float32) for s in spec.states]


def run_steps(step: Any, spec: StreamSpec, windows: np.ndarray) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Step through ``windows`` (n, steps, features) as n streams in parallel from zero state: the feeds of each
    step (``x`` and the states it saw) and the step model's ``y`` at every step, (n, steps, ...).

    Example:
        >>> feeds, ys = run_steps(step, spec, windows)  # doctest: +SKIP
    """
    states = zero_states(spec, len(windows))
    feeds, ys = [], []
    for t in range(windows.shape[1]):
        x = windows[:, t].astype(np.float32)
        feeds.append({spec.step_input: x, **{s["input"]: v for s, v in zip(spec.states, states, strict=True)}})
        out = step([x, *states], training=False)
        ys.append(np.asarray(out[0]))
        states = [np.asarray(v) for v in out[1:]]
    return feeds, np.stack(ys, axis=1)


def check_against_windows(model: Any, step: Any, spec: StreamSpec, windows: np.ndarray) -> float:
    """Max |difference| between the original model's outputs on ``windows`` and the step model's after each
    window's last step (a model returning sequences: every step). Refused when it is not ~0.

    Example:
        >>> check_against_windows(model, step, spec, windows[:32])  # doctest: +SKIP
        2.384185791015625e-07
    """
    _, ys = run_steps(step, spec, windows)
    want = np.asarray(window_outputs(model, windows.astype(np.float32)))
    got = ys if want.ndim == ys.ndim else ys[:, -1]
    diff = float(np.abs(got - want).max())
    if not diff <= 1e-4 * max(1.0, float(np.abs(want).max())):
        raise InputError(f"--streaming: the one-step model differs from {model.name!r} by {diff:.3g} on its windows")
    return diff


def window_outputs(model: Any, windows: np.ndarray) -> np.ndarray:
    """The original model on each window from zero state (a stateful model one window at a time, reset before
    each: its batch is fixed and it would carry state from one window into the next).

    Example:
        >>> window_outputs(stateful_model, windows).shape  # doctest: +SKIP
        (120, 1)
    """
    if not is_stateful(model):
        return np.asarray(model(windows, training=False))
    outputs = []
    for window in windows:
        for layer in model._flatten_layers():
            if getattr(layer, "stateful", False):
                layer.reset_state()
        outputs.append(np.asarray(model(window[None], training=False))[0])
    return np.stack(outputs)


def stepped_feeds(step: Any, spec: StreamSpec, windows: np.ndarray) -> dict[str, np.ndarray]:
    """Calibration / check samples for the one-step model: each step of ``windows`` with the state it really
    had (real state ranges calibrate the int8 state path), flattened to (n * steps, ...).

    Example:
        >>> stepped_feeds(step, spec, windows)["lstm_h"].shape  # doctest: +SKIP
        (4800, 16)
    """
    feeds, _ = run_steps(step, spec, windows)
    return {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}


def stream_reference(step: Any, spec: StreamSpec, stream: np.ndarray) -> dict[str, np.ndarray]:
    """One long stream (steps, features) through the step model from zero state: its ``x``, every step's ``y``
    and the stream's ``period`` (it holds the same steps twice: drift compares the same inputs, seen later).

    Example:
        >>> stream_reference(step, spec, stream)["y"].shape  # doctest: +SKIP
        (1536, 1)
    """
    _, ys = run_steps(step, spec, stream[None])
    return {"x": stream.astype(np.float32), "y": ys[0], "period": np.array(len(stream) // 2)}

"""The bundle manifest (``edgekit.json``): build it from a model, check it against its JSON Schema.

The schema lives beside this module (``edgekit.schema.json``, JSON Schema 2020-12). Versions
follow semver: a reader of 1.x takes any 1.y; a manifest of a newer major version is refused.
The checker below implements the keywords that schema uses, so the runtime lane needs no
``jsonschema`` package.

Example:
    >>> validate_spec({"schema_version": "1.0.0"})
    Traceback (most recent call last):
    ...
    edgekit.errors.InputError: edgekit.json: 'platform' is required (at $)
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from edgekit.contract import PIXELS, Contract, image_normalization
from edgekit.errors import InputError
from edgekit.formats.tflite import TFLiteModel, ends_in_softmax
from edgekit.rundir import check_version as check_schema_version
from edgekit.runtime.base import STATE_SUFFIXES
from edgekit.runtime.tflite import io_specs

SCHEMA_PATH = Path(__file__).with_name("edgekit.schema.json")
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


@functools.cache
def schema() -> dict[str, Any]:
    """The bundle manifest's JSON Schema.

    Example:
        >>> schema()["title"]
        'edgekit bundle manifest (edgekit.json)'
    """
    return json.loads(SCHEMA_PATH.read_text())


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _errors(value: Any, rule: dict[str, Any], where: str) -> list[str]:
    """Violations of one schema node (the subset of JSON Schema the manifest schema uses)."""
    if "oneOf" in rule:
        matches = sum(not _errors(value, option, where) for option in rule["oneOf"])
        return [] if matches == 1 else [f"matches {matches} of the allowed forms (at {where})"]
    if "type" in rule:
        kinds = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        if not any(_is(value, k) for k in kinds):
            return [f"must be {' or '.join(kinds)}, not {type(value).__name__} (at {where})"]
    if "enum" in rule and value not in rule["enum"]:
        return [f"{value!r} is not one of {rule['enum']} (at {where})"]
    found: list[str] = []
    if isinstance(value, str) and "pattern" in rule and not re.search(rule["pattern"], value):
        found.append(f"{value!r} does not match {rule['pattern']} (at {where})")
    if _is(value, "number") and "minimum" in rule and value < rule["minimum"]:
        found.append(f"{value} < {rule['minimum']} (at {where})")
    if isinstance(value, list):
        if len(value) < rule.get("minItems", 0) or len(value) > rule.get("maxItems", len(value)):
            found.append(f"has {len(value)} items (at {where})")
        for i, item in enumerate(value):
            found += _errors(item, rule.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        found += [f"{key!r} is required (at {where})" for key in rule.get("required", []) if key not in value]
        if len(value) < rule.get("minProperties", 0):
            found.append(f"needs at least {rule['minProperties']} entries (at {where})")
        for key, item in value.items():
            sub = rule.get("properties", {}).get(key, rule.get("additionalProperties", {}))
            if isinstance(sub, dict):
                found += _errors(item, sub, f"{where}.{key}")
    return found


def check_version(spec: dict[str, Any], where: str = "edgekit.json") -> None:
    """Refuse a manifest of another major version than this reader's.

    Example:
        >>> check_version({"schema_version": "2.0.0"})
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: edgekit.json: schema_version 2.0.0 is newer than edgekit reads (1.x): upgrade it
    """
    check_schema_version(str(spec.get("schema_version", "")), where, newer="upgrade it", older="re-bundle")


def validate_spec(spec: dict[str, Any], where: str = "edgekit.json") -> None:
    """Raise :class:`~edgekit.errors.InputError` naming the first place ``spec`` breaks the schema.

    Example:
        >>> validate_spec([])
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: edgekit.json: must be object, not list (at $)
    """
    if errors := _errors(spec, schema(), "$"):
        raise InputError(f"{where}: {errors[0]}")
    check_version(spec, where)


def _layout(shape: tuple[int | None, ...]) -> str:
    return {4: "NHWC", 3: "NTC", 2: "NC"}.get(len(shape), "N")


def default_preprocessing(shape: tuple[int | None, ...], dtype: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """How an app turns raw data into this input, unless the run or the user says otherwise.

    Images (rank 4, 1 or 3 channels): resized bilinearly to the input size, RGB or grayscale;
    a uint8 input takes the pixels as they are (Coral's convention); other inputs take
    ``(pixel - mean) / std`` (default 0 and 1: raw 0-255 values, as edgekit's zoo models take
    them, their scaling being inside the graph), quantized when the input is int8. Feature
    rows and windows take ``(value - mean) / std`` per channel where ``overrides`` gives them
    (an autoencoder's standardization), else the values as they are.

    Example:
        >>> default_preprocessing((1, 224, 224, 3), "uint8", {})["feed"]
        'uint8_pixels'
    """
    dims = [d or 1 for d in shape]
    if len(dims) == 4 and dims[-1] in (1, 3):
        channels = dims[-1]
        mean = overrides.get("mean") or [0.0] * channels
        std = overrides.get("std") or [1.0] * channels
        raw = dtype == "uint8" and "mean" not in overrides and "std" not in overrides
        return {
            "kind": "image", "size": [dims[1], dims[2]], "color": "RGB" if channels == 3 else "L",
            "resize": "bilinear", "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "feed": "uint8_pixels" if raw else ("quantize" if dtype in ("int8", "uint8") else "float"),
        }  # fmt: skip
    if dtype in ("int32", "int64"):
        return {"kind": "tokens"}
    feed = "quantize" if dtype in ("int8", "uint8") else "float"
    scaling = {k: [float(v) for v in overrides[k]] for k in ("mean", "std") if k in overrides}
    if len(dims) == 3:
        return {"kind": "window", "steps": dims[1], "channels": dims[2], **scaling, "feed": feed}
    return {"kind": "features", **scaling, "feed": feed}


def io_entries(
    model: TFLiteModel, overrides: dict[str, Any] | None = None, contract: Contract | None = None
) -> tuple[list[dict], list[dict]]:
    """The manifest's ``inputs`` and ``outputs`` of a TFLite model, by signature name, in order.

    An image input's normalization is ``overrides`` (``--mean`` / ``--std``), else what maps 0..255 pixels onto
    the range its ``contract`` says the model takes (a model trained on pixels / 255 gets ``std`` 255).

    Example:
        >>> ins, outs = io_entries(read_tflite("mobilenet_v2_1.0_224_quant.tflite"))  # doctest: +SKIP
        >>> ins[0]["preprocessing"]["feed"]  # doctest: +SKIP
        'uint8_pixels'
    """
    ins, outs = io_specs(model)

    def entry(spec: Any, index: int) -> dict[str, Any]:
        d = spec.to_dict()
        return {"name": d["name"], "index": index, "shape": [s or 1 for s in spec.shape], "dtype": d["dtype"],
                "quantization": d["quantization"]}  # fmt: skip

    inputs = []
    for i, spec in enumerate(ins):
        item = entry(spec, i)
        item["layout"] = _layout(spec.shape)
        item["preprocessing"] = default_preprocessing(spec.shape, spec.dtype, overrides or _normalization(
            contract, spec.name if len(ins) > 1 else None, spec.shape, spec.dtype))  # fmt: skip
        inputs.append(item)
    return inputs, [entry(spec, i) for i, spec in enumerate(outs)]


def with_run_shapes(path: Path, outputs: list[dict]) -> list[dict]:
    """``outputs`` with the shapes an op sets only when it runs (the detection post-processing op's outputs are
    shapeless in the file) taken from one run of the model on zeros.

    Example:
        >>> [o["shape"] for o in with_run_shapes(Path("ssd.tflite"), outputs)]  # doctest: +SKIP
        [[1, 4], [1], [1, 4, 4], [1, 4]]
    """
    if all(o["shape"] for o in outputs):
        return outputs
    import numpy as np

    from edgekit.runtime import load

    with load(path) as runner:
        values = runner.run([np.zeros([d or 1 for d in s.shape], s.dtype) for s in runner.inputs])
    shapes = {s.name: list(v.shape) for s, v in zip(runner.outputs, values, strict=True)}
    return [{**o, "shape": o["shape"] or shapes[o["name"]]} for o in outputs]


def _normalization(
    contract: Contract | None, name: str | None, shape: tuple[int | None, ...], dtype: str
) -> dict[str, Any]:
    """``mean`` / ``std`` for an image input from the contract's range (``name`` None: its only input); none for a
    uint8 input taking 0..255 pixels, which takes the bytes as they are (Coral's convention)."""
    found = (contract.input(name) if name else (contract.inputs[0] if len(contract.inputs) == 1 else None)) if (
        contract) else None  # fmt: skip
    if found is None or found.kind != "image" or found.range is None or (dtype == "uint8" and found.range == PIXELS):
        return {}
    return image_normalization(found.range, int(shape[-1] or 3))


def unknown_image_ranges(inputs: list[dict], contract: Contract | None) -> list[str]:
    """Image inputs of a float or int8 model whose range neither the contract nor ``--mean`` / ``--std`` give.

    Example:
        >>> unknown_image_ranges([{"name": "x", "preprocessing": {"kind": "image", "feed": "float", "mean": [0.0],
        ...     "std": [1.0]}}], None)
        ['x']
    """
    known = {i.name for i in (contract.inputs if contract else []) if i.range is not None}
    if contract is not None and len(contract.inputs) == 1 and len(inputs) == 1 and known:
        known = {inputs[0]["name"]}
    return [i["name"] for i in inputs if i["preprocessing"]["kind"] == "image"
            and i["preprocessing"]["feed"] != "uint8_pixels" and i["name"] not in known]  # fmt: skip


def classifier_postprocessing(
    model: TFLiteModel,
    outputs: list[dict],
    top_k: int,
    has_labels: bool,
    output: str | None = None,
    logits: bool | None = None,
) -> dict:
    """Post-processing of a classifier's output (``output``, default the first): softmax in the model or to
    apply, top-k, labels file. ``logits`` (the contract's word) says whether to apply softmax; without it, a
    SOFTMAX op producing the output says it is in the model.

    Example:
        >>> classifier_postprocessing(model, outputs, 5, True)["softmax"]  # doctest: +SKIP
        'in_model'
    """
    index = next((i for i, o in enumerate(outputs) if o["name"] == output), 0)
    chosen = outputs[index]
    in_model = (not logits) if logits is not None else ends_in_softmax(model, index)
    post: dict[str, Any] = {
        "output": chosen["name"],
        "softmax": "in_model" if in_model else "apply",
        "top_k": min(top_k, int(chosen["shape"][-1])),
    }
    if has_labels:
        post["labels"] = "labels.txt"
    return post


def decoded_task(contract: Contract | None, has_labels: bool) -> tuple[str, dict[str, Any]] | None:
    """The ``detector`` / ``pose`` / ``segmenter`` task and post-processing its contract's output kinds call for.

    Detection: the TFLite post-processing op's boxes / classes / scores / count, or plain box (last dim 4) and
    per-class score tensors (suppressed by the app). Pose: a keypoints tensor of (y, x, score) rows.
    Segmentation: a map of class ids, or of class scores (arg-maxed by the app).

    Example:
        >>> from edgekit.contract import OutputContract
        >>> c = Contract([], [OutputContract("ArgMax", "segmentation", shape=[1, 513, 513], role="class_ids")])
        >>> decoded_task(c, False)
        ('segmenter', {'output': 'ArgMax', 'form': 'class_ids'})
    """
    if contract is None:
        return None
    labels = {"labels": "labels.txt"} if has_labels else {}
    found = [o for o in contract.outputs if o.kind == "detection"]
    if found:
        roles = {o.role: o.name for o in found if o.role}
        if not {"boxes", "scores"} <= set(roles):
            boxes = [o.name for o in found if (o.shape or [0])[-1] == 4]
            scores = [o.name for o in found if o.name not in boxes]
            if len(boxes) != 1 or len(scores) != 1:
                names = ", ".join(f"{o.name} {o.shape}" for o in found)
                raise InputError(f"detection outputs {names}: need one box tensor (last dimension 4) and one score "
                                 "tensor")  # fmt: skip
            roles = {"boxes": boxes[0], "scores": scores[0]}
        return "detector", {"output": roles["boxes"], **roles, "score_threshold": 0.5, **labels}
    found = [o for o in contract.outputs if o.kind == "keypoints"]
    if found:
        return "pose", {"output": found[0].name}
    found = [o for o in contract.outputs if o.kind == "segmentation"]
    if found:
        form = "class_ids" if len(found[0].shape or []) == 3 else "scores"
        return "segmenter", {"output": found[0].name, "form": form, **labels}
    return None


def class_output(contract: Contract | None) -> str | None:
    """The name of the contract's one class output (probabilities or logits over several classes), if any.

    Example:
        >>> from edgekit.contract import OutputContract
        >>> class_output(Contract([], [OutputContract("p", "logits", shape=[None, 3])]))
        'p'
    """
    classes = [o for o in (contract.outputs if contract else []) if o.classes and (o.shape or [None])[-1] != 1]
    return classes[0].name if len(classes) == 1 else None


def postprocessing(
    model: TFLiteModel,
    outputs: list[dict],
    contract: Contract | None,
    run_task: dict[str, Any],
    labels: list[str] | None,
    top_k: int,
) -> tuple[str, dict[str, Any]]:
    """The manifest's ``task`` and ``postprocessing``: the run's recorded task first (a scorer's threshold, a
    forecaster's scaling), else what the contract's output kinds call for (:func:`decoded_task`, a classifier
    over its class output with softmax applied to logits), else ``raw`` values.

    Example:
        >>> postprocessing(model, outputs, contract, {}, None, 5)[0]  # doctest: +SKIP
        'classifier'
    """
    decoded = None if run_task.get("type") else decoded_task(contract, bool(labels))
    if decoded is not None:
        return decoded
    name = class_output(contract)
    task = run_task.get("type") or ("classifier" if labels or name else "raw")
    if task == "classifier":
        logits = contract.output(name).kind == "logits" if contract and name else None
        return task, classifier_postprocessing(model, outputs, top_k, bool(labels), name, logits)
    inputs = {s.name for s in io_specs(model)[0]}
    states = {o["name"] for o in outputs if any(o["name"] == i + s for i in inputs for s in STATE_SUFFIXES)}
    post: dict[str, Any] = {"output": next((o["name"] for o in outputs if o["name"] not in states), outputs[0]["name"])}
    if task == "anomaly_scorer":
        post["threshold"] = float(run_task["threshold"])
        post["threshold_method"] = run_task.get("threshold_method", "")
        post["anomaly_if"] = run_task.get("anomaly_if", "score > threshold")
        if states and run_task.get("stream"):  # a streaming scorer: y is each step's errors, scored over a window
            post["window_reduce"] = run_task["stream"]["window_reduce"]
    elif task == "forecaster":
        post["inverse_scaling"] = ("in the model (its Normalization layer was fitted on the training split)"
                                   if "scaler" in run_task else "none")  # fmt: skip
    elif labels is not None:
        raise InputError(f"labels given, but the model is a {task}, not a classifier, detector or segmenter")
    return task, post

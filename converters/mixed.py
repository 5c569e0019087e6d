"""``tflite:mixed`` and ``onnx:mixed``: integer everywhere except the fewest layers that must stay float for the
file to meet a budget.

The search, in the worker:

1. the quantizer measures the error each layer adds — TFLite's quantization debugger, calibrated once
   (:mod:`edgekit.converters.diagnose`), or ONNX Runtime's ``qdq_loss_debug``
   (:func:`edgekit.converters.onnx.onnx_layer_errors`); layers are grouped by the Keras layer they come from
   and ranked worst (lowest SNR) first;
2. each candidate keeps some of them float (TFLite: the calibrated model quantized with a deny-list; ONNX:
   ``nodes_to_exclude``), runs in LiteRT / ONNX Runtime on the evaluation data, and is checked against the
   budget with the figures ``edgekit validate`` gates on (:func:`edgekit.common.budgets.check`);
3. candidates keep the worst 0, 1, 2, 4, … layers float until one meets the budget; bisection then finds the
   fewest worst-first layers, and each chosen layer is dropped in turn while the budget still holds;
4. at most :data:`MAX_CANDIDATES` are tried. None within budget: the best one is reported, and the artifact
   fails.

When full int8 breaks the budget, the worst three layers are also measured each quantized *alone* (every
other layer float), so the report shows whether the layers named really carry the loss, and ``loss`` says
whether it is concentrated in layers under 20 dB (a few float layers fix it) or spread as rounding over
every layer (ResNet50 here: every layer at 32-48 dB; no small float set exists).

Example:
    >>> blob, report = search(TFLiteQuantizer(model, calibration, io), evaluation)  # doctest: +SKIP
    >>> report["float_layers"], report["within_budget"]  # doctest: +SKIP
    (['scale'], True)
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.budgets import Budgets, check, scored_cell
from edgekit.common.calibration import count
from edgekit.common.metrics import agreement_figure
from edgekit.common.parity import compare
from edgekit.common.thresholds import calibrate_threshold
from edgekit.converters.diagnose import debugged, layer_errors, quantized_except
from edgekit.converters.onnx import onnx_layer_errors, preprocess_onnx, quantize_onnx
from edgekit.formats.tflite import name_io_in_order

MAX_CANDIDATES = 12
BREAKING_DB = 20.0  # a layer whose own error is under this SNR breaks int8 by itself (see the diagnosis)
ALONE = 3  # the worst layers also measured quantized alone


@dataclass
class Evaluation:
    """What each candidate is measured on: inputs by name, labels by output (None: agreement only), the float
    model's outputs on them, each output's metric kind, and a scorer's normal data and threshold rule."""

    feeds: dict[str, np.ndarray]
    labels: dict[str, np.ndarray] | None
    reference: dict[str, np.ndarray]
    kinds: dict[str, str]
    budgets: Budgets
    source: str
    normal: dict[str, np.ndarray] | None = None
    rule: dict[str, Any] | None = None
    reference_threshold: float | None = None


@dataclass
class Candidate:
    """One deny-list and what it measured."""

    units: tuple[str, ...]
    blob: bytes
    within_budget: bool
    broken: list[str]
    figures: dict[str, float]
    latency_ms: float
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The manifest's view: float layers, figures, whether it met the budget and what it broke."""
        return {
            "float_layers": list(self.units), "within_budget": self.within_budget, "figures": self.figures,
            "broken": self.broken, "latency_ms": self.latency_ms, "size_bytes": len(self.blob),
        }  # fmt: skip


class TFLiteQuantizer:
    """TFLite int8 with float layers: TFLite's debugger calibrates once; a candidate is its calibrated model
    quantized with the layers' output tensors on the deny-list."""

    suffix = ".tflite"

    def __init__(self, model: Any, calibration: dict[str, np.ndarray], io: dict[str, Any], *, batch: int = 1,
                 per_channel: bool = True) -> None:  # fmt: skip
        self.debugger = debugged(model, calibration, precision="int8", batch=batch, per_channel=per_channel, **io)
        self.errors = layer_errors(self.debugger, [layer.name for layer in model._flatten_layers()])
        self.io_names = [s.name for s in io["inputs"]], list(io["outputs"])

    def handles(self, error: dict[str, Any]) -> list[str]:
        """What keeps this layer float: its output tensor."""
        return [error["name"]]

    def build(self, handles: list[str]) -> bytes:
        """The candidate keeping ``handles`` float, its inputs and outputs in Keras order (as every artifact)."""
        return name_io_in_order(quantized_except(self.debugger, handles), *self.io_names)


class OnnxQuantizer:
    """ONNX int8 (QDQ) with float nodes: ONNX Runtime's static quantization with ``nodes_to_exclude``."""

    suffix = ".onnx"

    def __init__(self, fp32: bytes, calibration: dict[str, np.ndarray], layer_names: list[str], *,
                 per_channel: bool = True) -> None:  # fmt: skip
        self.fp32, self.calibration, self.per_channel = fp32, calibration, per_channel
        self.preprocessed = preprocess_onnx(fp32)
        self.errors = onnx_layer_errors(self.preprocessed, self.build([]), calibration, layer_names)

    def handles(self, error: dict[str, Any]) -> list[str]:
        """What keeps this tensor float: the node writing it (a graph input: the nodes reading it)."""
        return list(error["nodes"])

    def build(self, handles: list[str]) -> bytes:
        """The candidate keeping the nodes ``handles`` float."""
        return quantize_onnx(self.fp32, calibration=self.calibration, per_channel=self.per_channel,
                             nodes_to_exclude=handles, preprocessed=self.preprocessed)  # fmt: skip


def _run(blob: bytes, feeds: dict[str, np.ndarray], suffix: str) -> tuple[dict[str, np.ndarray], float]:
    """Outputs of a candidate by name, and its mean latency per sample in ms (LiteRT / ONNX Runtime, one thread)."""
    from edgekit.runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"candidate{suffix}"
        path.write_bytes(blob)
        runner = load(path, threads=1)
        start = time.perf_counter()
        outs = runner.run(feeds)
        seconds = time.perf_counter() - start
    n = len(next(iter(feeds.values())))
    return dict(zip([s.name for s in runner.outputs], outs, strict=True)), round(1000 * seconds / n, 4)


def measure(units: tuple[str, ...], blob: bytes, ev: Evaluation, suffix: str = ".tflite") -> Candidate:
    """Run one candidate on the evaluation data and check it against the budget.

    Example:
        >>> measure((), blob, evaluation).within_budget  # doctest: +SKIP
        False
    """
    outputs, latency = _run(blob, ev.feeds, suffix)
    own = None
    if ev.normal is not None and ev.rule is not None:  # a scorer decides at its own threshold
        scores, _ = _run(blob, ev.normal, suffix)
        first = next(iter(scores.values()))
        own = calibrate_threshold(first.reshape(len(first), -1)[:, 0], ev.rule["method"], ev.rule["value"])
    x = next(iter(ev.feeds.values())) if len(ev.feeds) == 1 else None
    cell, ref_cell = scored_cell(
        "candidate", ev.kinds, ev.reference, outputs, labels=ev.labels, x=x, thresholds=(ev.reference_threshold, own)
    )
    broken = check([cell], ref_cell, ev.kinds, ev.budgets)
    figures: dict[str, float] = {}
    for output, a in cell["agreement"].items():
        name, value = agreement_figure(a)
        figures[f"{output}:{name}"] = value
    for output, m in cell["metrics"].items():
        for key in ("accuracy", "roc_auc", "mae", "mse"):
            if m.get(key) is not None:
                figures[f"{output}:{key}"] = m[key]
                ref = ref_cell["metrics"][output].get(key)
                if ref is not None:
                    figures[f"{output}:{key}_reference"] = ref
    messages = [f"{b['figure']}{' of ' + repr(b['output']) if b['output'] else ''} = {b['value']:g}, limit "
                f"{b['limit']:g}" for b in broken]  # fmt: skip
    if ev.labels is None:  # agreement only: convert's own tolerance too, so an output no budget figure covers (a
        # regression, a streaming file's state) cannot pass a candidate the artifact check then calls out of tolerance
        parity = compare(ev.reference, outputs, kinds=ev.kinds, precision="int8")["outputs"]
        messages += [f"parity {p['check']['figure']} of {name!r} = {p['check']['value']:.3g}, limit "
                     f"{p['check']['limit']:g}" for name, p in parity.items() if not p["within_tolerance"]]  # fmt: skip
    return Candidate(units, blob, not messages, messages, figures, latency, own)


def ranked_units(errors: list[dict[str, Any]], handles: Any = lambda e: [e["name"]]) -> tuple[list[str], dict]:
    """Layers worst first (by their lowest SNR), each a Keras layer name where the tensor maps, else the tensor's
    name; and what keeps each float (``handles`` of its errors: TFLite tensors, ONNX nodes).

    Example:
        >>> ranked_units([{"name": "a", "keras_layer": "d", "snr_db": 30.0}, {"name": "b", "keras_layer": None,
        ...               "snr_db": 3.0}, {"name": "c", "keras_layer": "d", "snr_db": 40.0}])
        (['b', 'd'], {'d': ['a', 'c'], 'b': ['b']})
    """
    tensors: dict[str, list[str]] = {}
    worst: dict[str, float] = {}
    for e in errors:
        unit = e["keras_layer"] or e["name"]
        tensors.setdefault(unit, []).extend(h for h in handles(e) if h not in tensors.get(unit, []))
        worst[unit] = min(worst.get(unit, np.inf), e["snr_db"])
    return sorted(worst, key=lambda u: worst[u]), tensors


def _score(c: Candidate) -> tuple[int, float]:
    """How close a candidate came, for choosing the best of a failed search: fewer broken budgets, then the
    lowest agreement figure higher."""
    agreements = [v for k, v in c.figures.items() if k.endswith(("agreement", "cosine"))]
    return len(c.broken), -min(agreements, default=0.0)


def _alone(quantizer: Any, ranked: list[str], tensors: dict[str, list[str]], ev: Evaluation) -> list[dict]:
    """The worst :data:`ALONE` layers each quantized *in isolation* (every other layer float): how much of full
    int8's loss each one reproduces on its own."""
    alone = []
    for unit in ranked[:ALONE]:
        others = [t for u in ranked if u != unit for t in tensors[u]]
        c = measure((unit,), quantizer.build(others), ev, quantizer.suffix)
        alone.append({"layer": unit, "within_budget": c.within_budget, "figures": c.figures})
    return alone


def loss_shape(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether full int8's error is *concentrated* in layers that break it by themselves (under 20 dB: a
    small float set fixes it) or *spread* as rounding over every layer (then no small set exists).

    Example:
        >>> loss_shape([{"name": "t", "keras_layer": "scale", "snr_db": 3.0}, {"name": "u", "keras_layer": None,
        ...             "snr_db": 40.0}])
        {'kind': 'concentrated', 'layers': ['scale']}
        >>> loss_shape([{"name": "t", "keras_layer": None, "snr_db": 33.0}])["kind"]
        'spread'
    """
    loud = list(dict.fromkeys(e["keras_layer"] or e["name"] for e in errors if e["snr_db"] < BREAKING_DB))
    if loud:
        return {"kind": "concentrated", "layers": loud}
    return {
        "kind": "spread", "worst_snr_db": min((e["snr_db"] for e in errors), default=None),
        "why": f"every layer adds only rounding-level error (>= {BREAKING_DB:g} dB); the loss accumulates over the "
               "graph, so few float layers cannot remove it: quantization-aware training (edgekit optimize --qat) "
               "addresses it",
    }  # fmt: skip


def disagreement_bound(disagreements: int, samples: int, confidence: float = 0.95) -> float:
    """The one-sided upper confidence bound (Clopper-Pearson) on the rate of inputs that disagree with the float
    model, from ``disagreements`` seen in ``samples``: what an agreement figure on a few samples can promise.

    Example:
        >>> round(disagreement_bound(0, 64), 4)  # 64 of 64 agreeing: up to 4.6 % may still disagree
        0.0457
    """
    if disagreements >= samples:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, disagreements + 1, samples - disagreements))


def agreement_bounds(figures: dict[str, float], samples: int) -> dict[str, dict[str, Any]]:
    """Each agreement figure of a candidate as a statistical bound on the evaluation data: how many of the
    ``samples`` disagreed, and the rate of disagreement it rules out at 95 % confidence.

    Example:
        >>> agreement_bounds({"probs:top1_agreement": 1.0}, 64)["probs:top1_agreement"]["says"]
        'at most 4.6% of such inputs disagree with the float model (95% confidence; 0 of 64 did here)'
    """
    bounds = {}
    for name, value in figures.items():
        if name.endswith("agreement") and samples:
            k = round((1 - value) * samples)
            upper = disagreement_bound(k, samples)
            bounds[name] = {"samples": samples, "disagreements": k, "disagreement_95_upper": round(upper, 4),
                            "says": f"at most {upper:.1%} of such inputs disagree with the float model (95% "
                                    f"confidence; {k} of {samples} did here)"}  # fmt: skip
    return bounds


def search(quantizer: Any, ev: Evaluation) -> tuple[bytes, dict[str, Any]]:
    """The mixed file (the fewest float layers found within budget, else the best candidate) and its report;
    ``quantizer`` is a :class:`TFLiteQuantizer` or an :class:`OnnxQuantizer`.

    Example:
        >>> blob, report = search(TFLiteQuantizer(model, calibration, io), evaluation)  # doctest: +SKIP
        >>> report["candidates"][0]["float_layers"]  # doctest: +SKIP
        []
    """
    errors = quantizer.errors
    ranked, tensors = ranked_units(errors, quantizer.handles)
    tried: dict[frozenset[str], Candidate] = {}

    def attempt(units: list[str]) -> Candidate | None:
        key = frozenset(units)
        if key not in tried and len(tried) < MAX_CANDIDATES:
            denied = [t for u in units for t in tensors[u]]
            tried[key] = measure(tuple(units), quantizer.build(denied), ev, quantizer.suffix)
        return tried.get(key)

    full = attempt([])
    assert full is not None
    passing_k, failing_k = (0, -1) if full.within_budget else (None, 0)
    k = 1
    while passing_k is None and k <= len(ranked):  # grow: the worst 1, 2, 4, ... layers float
        c = attempt(ranked[:k])
        if c is None:
            break
        passing_k, failing_k = (k, failing_k) if c.within_budget else (None, k)
        k = len(ranked) if k < len(ranked) < 2 * k else 2 * k
    while passing_k is not None and passing_k - failing_k > 1:  # bisect between the last failing and passing k
        mid = (passing_k + failing_k) // 2
        c = attempt(ranked[:mid])
        if c is None:
            break
        passing_k, failing_k = (mid, failing_k) if c.within_budget else (passing_k, mid)
    chosen_units = ranked[:passing_k] if passing_k is not None else None
    if chosen_units and len(chosen_units) > 1:  # drop a layer while the budget still holds
        for unit in list(chosen_units):
            c = attempt([u for u in chosen_units if u != unit])
            if c is not None and c.within_budget:
                chosen_units = [u for u in chosen_units if u != unit]
    if chosen_units is not None:
        chosen = tried[frozenset(chosen_units)]
        why = (
            f"the fewest float layers within the budget of {len(tried)} candidate(s) tried, worst-SNR first"
            if chosen.units
            else "full int8 already meets the budget"
        )
    else:
        chosen = min(tried.values(), key=_score)
        why = f"no candidate within the budget after {len(tried)} tried: the closest one"
    report = {
        "float_layers": list(chosen.units),
        "within_budget": chosen.within_budget,
        "budget": ev.budgets.active(),
        "evaluated_on": ev.source,
        "chosen_because": why,
        "figures": chosen.figures,
        "broken": chosen.broken,
        "latency_ms": chosen.latency_ms,
        "full_int8": {"latency_ms": full.latency_ms, "size_bytes": len(full.blob), "figures": full.figures},
        "latency_vs_full_int8": round(chosen.latency_ms / full.latency_ms, 3) if full.latency_ms else None,
        "size_vs_full_int8": round(len(chosen.blob) / len(full.blob), 3),
        "agreement_bounds": agreement_bounds(chosen.figures, count(ev.feeds)),
        "candidates": [c.summary() for c in tried.values()],
        "layer_errors": errors,
        "quantized_alone": [] if full.within_budget else _alone(quantizer, ranked, tensors, ev),
        "loss": None if full.within_budget else loss_shape(errors),
        "io": "float32 inputs and outputs (QUANTIZE / DEQUANTIZE inside)",
    }
    if chosen.threshold is not None:
        report["threshold"] = chosen.threshold
    return chosen.blob, report

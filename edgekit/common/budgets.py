"""Budgets that gate CI: limits on what ``edgekit validate`` measured, each broken one named.

- ``max_accuracy_drop``: reference − artifact on a main metric where higher is better (accuracy,
  ROC-AUC), in absolute units (0.01 = 1 point);
- ``max_error``: a main metric where lower is better (MAE of regressors and forecasters, reconstruction MSE);
- ``min_agreement``: top-1 (classifiers) or decision (binary classifiers, thresholded scorers) agreement
  with the reference, else the mean cosine similarity;
- ``max_latency_ms``: p90 latency at batch 1;
- ``max_size_mb``: file size, MB = 10⁶ bytes;
- ``max_memory_mb``: peak resident memory of the process that ran the cell, MiB.

Example:
    >>> Budgets(max_latency_ms=5.0).active()
    {'max_latency_ms': 5.0}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.common.metrics import agreement, agreement_figure, main_metric, task_metrics


@dataclass
class Budgets:
    """Limits; None means no limit."""

    max_accuracy_drop: float | None = None
    max_error: float | None = None
    min_agreement: float | None = None
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    max_memory_mb: float | None = None

    def active(self) -> dict[str, float]:
        """The limits that are set.

        Example:
            >>> Budgets().active()
            {}
        """
        return {k: v for k, v in asdict(self).items() if v is not None}

    def merged(self, overrides: dict[str, float | None]) -> Budgets:
        """These budgets with every non-None value of ``overrides`` (the CLI's flags) on top.

        Example:
            >>> Budgets(max_size_mb=2.0).merged({"max_size_mb": 1.0, "max_error": None}).active()
            {'max_size_mb': 1.0}
        """
        return Budgets(**{**asdict(self), **{k: v for k, v in overrides.items() if v is not None}})


def _broken(result: dict[str, Any], figure: str, value: float, limit: float, output: str | None = None) -> dict:
    where = f"{result['artifact']} on {result['target_requested']} ({result['threads']} thread(s))"
    return {
        "artifact": result["artifact"], "target": result["target_requested"], "threads": result["threads"],
        "output": output, "figure": figure, "value": value, "limit": limit,
        "message": f"{where}: {figure}{f' of {output!r}' if output else ''} = {value:g}, limit {limit:g}",
    }  # fmt: skip


def check(
    results: list[dict[str, Any]], reference: dict[str, Any] | None, kinds: dict[str, str], budgets: Budgets
) -> list[dict[str, Any]]:
    """Every budget a measured cell breaks (artifact, target, figure, value, limit and one line).

    Example:
        >>> cell = {"artifact": "m.tflite", "target_requested": "cpu", "threads": 1, "status": "measured",
        ...         "size_bytes": 3_000_000, "metrics": {}, "agreement": {}, "latency_ms": {"p90": 1.0},
        ...         "peak_rss_mb": 80.0}
        >>> [b["message"] for b in check([cell], None, {}, Budgets(max_size_mb=2.0))]
        ['m.tflite on cpu (1 thread(s)): size_mb = 3, limit 2']
    """
    broken: list[dict[str, Any]] = []
    ref_metrics = (reference or {}).get("metrics") or {}
    for r in results:
        if r["status"] not in ("measured", "checked"):  # checked: a pi cell, outputs without a latency
            continue
        size_mb = r["size_bytes"] / 1e6
        if budgets.max_size_mb is not None and size_mb > budgets.max_size_mb:
            broken.append(_broken(r, "size_mb", round(size_mb, 3), budgets.max_size_mb))
        if budgets.max_latency_ms is not None and r["latency_ms"] and r["latency_ms"]["p90"] > budgets.max_latency_ms:
            broken.append(_broken(r, "latency_p90_ms", r["latency_ms"]["p90"], budgets.max_latency_ms))
        if (
            budgets.max_memory_mb is not None
            and r["peak_rss_mb"] is not None
            and r["peak_rss_mb"] > budgets.max_memory_mb
        ):
            broken.append(_broken(r, "peak_rss_mb", r["peak_rss_mb"], budgets.max_memory_mb))
        for output, metrics in (r.get("metrics") or {}).items():
            name, higher = main_metric(kinds[output], metrics)
            value = metrics.get(name)
            if value is None:
                continue
            ref_value = (ref_metrics.get(output) or {}).get(name)
            if higher and budgets.max_accuracy_drop is not None and ref_value is not None:
                drop = round(ref_value - value, 6)
                if drop > budgets.max_accuracy_drop:
                    broken.append(_broken(r, f"{name}_drop", drop, budgets.max_accuracy_drop, output))
            if not higher and budgets.max_error is not None and value > budgets.max_error:
                broken.append(_broken(r, name, value, budgets.max_error, output))
        for output, a in (r.get("agreement") or {}).items():
            figure, value = agreement_figure(a)
            if budgets.min_agreement is not None and value < budgets.min_agreement:
                broken.append(_broken(r, figure, value, budgets.min_agreement, output))
    return broken


def scored_cell(
    name: str,
    kinds: dict[str, str],
    reference: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    *,
    labels: dict[str, np.ndarray] | None = None,
    x: np.ndarray | None = None,
    thresholds: tuple[float | None, float | None] = (None, None),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A measured cell for :func:`check` from outputs computed elsewhere (the ``tflite:mixed`` search), and the
    reference's metrics: the same figures ``edgekit validate`` gates on.

    ``thresholds`` are a scorer's (reference, this file's own) thresholds; ``x`` the input an autoencoder
    reconstructs.

    Example:
        >>> ref = {"p": np.array([[0.9, 0.1], [0.2, 0.8]])}
        >>> cell, ref_cell = scored_cell("m", {"p": "classifier"}, ref, ref, labels={"p": np.array([0, 0])})
        >>> cell["agreement"]["p"]["top1_agreement"], ref_cell["metrics"]["p"]["accuracy"]
        (1.0, 0.5)
    """
    ref_threshold, own_threshold = thresholds
    metrics, ref_metrics, agreements = {}, {}, {}
    for output, ref in reference.items():
        kind = kinds[output]
        label = (labels or {}).get(output)
        if label is not None or kind == "autoencoder":
            metrics[output] = task_metrics(kind, outputs[output], label, x=x, threshold=own_threshold)
            ref_metrics[output] = task_metrics(kind, ref, label, x=x, threshold=ref_threshold)
        agreements[output] = agreement(
            kind, ref, outputs[output], threshold=ref_threshold, output_threshold=own_threshold
        )
    cell = {
        "artifact": name, "target_requested": "cpu", "threads": 1, "status": "measured", "size_bytes": 0,
        "metrics": metrics, "agreement": agreements, "latency_ms": {"p90": 0.0}, "peak_rss_mb": 0.0,
    }  # fmt: skip
    return cell, {"metrics": ref_metrics}

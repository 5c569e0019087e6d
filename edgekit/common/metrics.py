"""Task metrics on labelled data and agreement with a reference, in numpy only (runs on a Pi).

Each output is scored by its *kind*: the task of that output, which decides
what its labels mean and which figure leads.

| kind | labels | metrics | main figure |
|---|---|---|---|
| classifier | class index per sample | top-1, top-5 (> 5 classes), confusion matrix | accuracy ↑ |
| binary-classifier | 0 / 1 | accuracy, precision, recall, F1 at 0.5, ROC-AUC | accuracy ↑ |
| regressor | target values | MAE, RMSE | mae ↓ |
| forecaster | the next value | MAE, RMSE, naive MAE (last input step), MAE / naive | mae ↓ |
| anomaly_scorer | 1 = anomaly | precision, recall, F1 at the threshold, ROC-AUC | roc_auc ↑ |
| autoencoder | 1 = anomaly (optional) | reconstruction MSE, ROC-AUC of per-sample MSE | roc_auc ↑ (else mse ↓) |

Example:
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> task_metrics("classifier", probs, np.array([0, 1, 1]))["accuracy"]
    0.666667
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("classifier", "binary-classifier", "regressor", "forecaster", "anomaly_scorer", "autoencoder")
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "mae": False, "mse": False}


def main_metric(kind: str, metrics: dict[str, Any]) -> tuple[str, bool]:
    """The figure that leads for this kind (name, higher is better), given what was measured.

    Example:
        >>> main_metric("forecaster", {"mae": 3.0})
        ('mae', False)
    """
    if kind in ("classifier", "binary-classifier"):
        name = "accuracy"
    elif kind in ("regressor", "forecaster"):
        name = "mae"
    elif kind == "autoencoder" and "roc_auc" not in metrics:
        name = "mse"
    else:
        name = "roc_auc"
    return name, HIGHER_IS_BETTER[name]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann–Whitney U) formula, ties counted half.

    Example:
        >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        0.75
    """
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, positive: np.ndarray, points: int = 101) -> dict[str, list[float]]:
    """False / true positive rates at ``points`` thresholds spread over the scores' quantiles (for plots), and
    one above every score, so the curve runs from (1, 1) to (0, 0).

    Example:
        >>> curve = roc_curve(np.array([0.1, 0.9]), np.array([0, 1]), points=3)
        >>> curve["fpr"], curve["tpr"]
        ([1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    """
    positive = positive.astype(bool)
    thresholds = np.append(np.unique(np.quantile(scores, np.linspace(0, 1, points))), np.inf)
    fpr = [float(np.mean(scores[~positive] >= t)) if (~positive).any() else 0.0 for t in thresholds]
    tpr = [float(np.mean(scores[positive] >= t)) if positive.any() else 0.0 for t in thresholds]
    return {"fpr": fpr, "tpr": tpr}


def _decisions(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": float(np.mean(predicted == actual))}


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}


def per_sample_scores(kind: str, output: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
    """One anomaly score per sample: the scorer's own output, or an autoencoder's reconstruction MSE.

    Example:
        >>> per_sample_scores("autoencoder", np.zeros((2, 3)), np.ones((2, 3))).tolist()
        [1.0, 1.0]
    """
    flat = output.reshape(len(output), -1).astype(np.float64)
    if kind == "autoencoder":
        assert x is not None, "an autoencoder is scored against its input"
        return np.mean((flat - x.reshape(len(x), -1).astype(np.float64)) ** 2, axis=1)
    return flat[:, 0] if flat.shape[1] == 1 else flat.max(axis=1)


def task_metrics(
    kind: str,
    output: np.ndarray,
    labels: np.ndarray | None,
    *,
    x: np.ndarray | None = None,
    threshold: float | None = None,
    naive: np.ndarray | None = None,
) -> dict[str, Any]:
    """The kind's metrics for one output against its labels (see the module table).

    ``x`` is the input an autoencoder reconstructs; ``threshold`` the anomaly
    threshold of a scorer; ``naive`` a forecaster's last observed value.

    Example:
        >>> task_metrics("forecaster", np.array([[2.0], [4.0]]), np.array([3.0, 4.0]), naive=np.array([1.0, 3.0]))
        {'mae': 0.5, 'rmse': 0.707107, 'naive_mae': 1.5, 'mae_vs_naive': 0.333333}
    """
    m: dict[str, Any] = {}
    if kind == "classifier":
        probs = output.reshape(len(output), -1)
        y = labels.astype(np.int64).reshape(-1)
        classes = probs.shape[1]
        m["accuracy"] = float(np.mean(probs.argmax(-1) == y))
        if classes > 5:
            top5 = np.argsort(-probs, axis=1)[:, :5]
            m["top5_accuracy"] = float(np.mean((top5 == y[:, None]).any(axis=1)))
        confusion = np.zeros((classes, classes), np.int64)
        np.add.at(confusion, (y, probs.argmax(-1)), 1)
        m["confusion_matrix"] = confusion.tolist()
    elif kind == "binary-classifier":
        p = output.reshape(-1).astype(np.float64)
        y = labels.reshape(-1).astype(bool)
        m.update(_decisions(p > 0.5, y))
        m["roc_auc"] = roc_auc(p, y)
    elif kind in ("regressor", "forecaster"):
        pred = output.reshape(len(output), -1).astype(np.float64)
        y = labels.reshape(len(labels), -1).astype(np.float64)
        m["mae"] = float(np.mean(np.abs(pred - y)))
        m["rmse"] = float(np.sqrt(np.mean((pred - y) ** 2)))
        if naive is not None:
            m["naive_mae"] = float(np.mean(np.abs(naive.reshape(y.shape) - y)))
            m["mae_vs_naive"] = m["mae"] / m["naive_mae"] if m["naive_mae"] else None
    elif kind in ("anomaly_scorer", "autoencoder"):
        scores = per_sample_scores(kind, output, x)
        if kind == "autoencoder":
            m["mse"] = float(scores.mean())
        if labels is not None:
            y = labels.reshape(-1).astype(bool)
            m["roc_auc"] = roc_auc(scores, y)
            if threshold is not None:
                m.update({k: v for k, v in _decisions(scores > threshold, y).items() if k != "accuracy"})
                m["threshold"] = threshold
    else:
        raise ValueError(f"unknown output kind {kind!r} (one of {', '.join(KINDS)})")
    return _rounded(m)


def agreement(
    kind: str,
    reference: np.ndarray,
    output: np.ndarray,
    *,
    threshold: float | None = None,
    output_threshold: float | None = None,
) -> dict[str, Any]:
    """How closely ``output`` follows ``reference`` on the same samples.

    Top-1 agreement for classifiers, decision agreement for binary classifiers
    and thresholded scorers (the reference decides at ``threshold``, the output
    at its own ``output_threshold``, else the same), and for every kind max abs /
    max relative error (over the reference's largest magnitude) and the mean
    cosine similarity of each sample's output vector.

    Example:
        >>> agreement("classifier", np.array([[0.9, 0.1]]), np.array([[0.8, 0.2]]))["top1_agreement"]
        1.0
    """
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    got = output.reshape(len(output), -1).astype(np.float64)
    err = np.abs(ref - got)
    scale = max(float(np.abs(ref).max()), 1e-12)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cosine = np.where(norms > 0, np.sum(ref * got, axis=1) / np.maximum(norms, 1e-300), 1.0)
    a: dict[str, Any] = {
        "max_abs_error": float(err.max()),
        "max_rel_error": float(err.max() / scale),
        "cosine": float(np.mean(cosine)),
    }
    if kind == "classifier" and ref.shape[1] > 1:
        a["top1_agreement"] = float(np.mean(ref.argmax(-1) == got.argmax(-1)))
    elif kind == "binary-classifier":
        a["decision_agreement"] = float(np.mean((ref > 0.5) == (got > 0.5)))
    elif kind == "anomaly_scorer" and threshold is not None:
        own = threshold if output_threshold is None else output_threshold
        a["decision_agreement"] = float(
            np.mean((per_sample_scores(kind, reference) > threshold) == (per_sample_scores(kind, output) > own))
        )
    return _rounded(a)


def agreement_figure(a: dict[str, Any]) -> tuple[str, float]:
    """The agreement figure a ``--min-agreement`` budget checks: top-1, else decision, else cosine.

    Example:
        >>> agreement_figure({"cosine": 0.99, "top1_agreement": 0.97})
        ('top1_agreement', 0.97)
    """
    for name in ("top1_agreement", "decision_agreement", "cosine"):
        if name in a:
            return name, a[name]
    raise KeyError("no agreement figure")

"""What an optimize run bought, measured on real artifacts: the int8 file's score on the test split, raw and
gzip sizes, the fraction of zero weights and the unique values per layer counted in the TFLite weight buffers.

Example:
    >>> weight_stats("model_int8.tflite")["sparsity"]  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.io import sha256_file, tool_versions
from edgekit.common.parity import compare
from edgekit.errors import ConversionError
from edgekit.formats.tflite import read_tflite
from edgekit.rundir import Record
from edgekit.runtime import load
from edgekit.stages.optimize.driver import Optimized


def measure(result: Optimized) -> Record:
    """Score and size the converted source and result; write and return the optimize record.

    Example:
        >>> measure(result)["metrics"]["sparsity"] >= 0.49  # doctest: +SKIP
        True
    """
    src, passed, settings = result.source, result.passed, result.settings
    metric = "accuracy" if src.classifier else "mae"
    report = _report(result)
    pruned_layers = [v for v in report["after"]["weights"]["layers"].values() if v["zeros"] >= 0.1]
    zeros = sum(v["zeros"] * v["elements"] for v in pruned_layers)
    metrics = {
        f"{metric}_before": passed.scores["before"],
        f"{metric}_after": passed.scores["after"],
        f"{metric}_int8_before": report["before"]["int8_" + metric],
        f"{metric}_int8_after": report["after"]["int8_" + metric],
        "sparsity": round(zeros / max(sum(v["elements"] for v in pruned_layers), 1), 4),
    }
    limits, limit_source = settings.budget(src.recipe_budget)
    broken = budgets_broken(metrics, limits, report["after"]["int8_verdict"], metric)
    return result.run.write_record(
        "optimize",
        {
            "source": {"path": str(src.model_path), "sha256": sha256_file(src.model_path)},
            "settings": {
                "passes": {k: vars(v) for k, v in settings.passes().items()},
                "epochs": settings.epochs,
                "learning_rate": settings.learning_rates(),
                "batch_size": settings.batch_size,
                "seed": settings.seed,
                "batchnorm": settings.batchnorm,
                "loss": passed.loss,
            },
            "bridge_max_abs_diff": passed.bridge_max_abs_diff,
            "batchnorm_folded_into": passed.folded,
            "batchnorm_recalibrated": passed.recalibrated,
            "metrics": metrics,
            "budget": {"limits": limits, "from": limit_source},
            "budgets_broken": broken,
            "verdict": "over_budget" if broken else "pass",
            "report": report,
            "task": src.run_task,
            "detected_task": src.detected,
            "history": passed.history,
            "seconds": round(time.perf_counter() - result.started, 1),
            "tools": tool_versions(),
            "artifacts": [passed.artifact],
        },
    )


def _report(result: Optimized) -> dict[str, Any]:
    """Per side: each artifact's sizes, the int8 file's score and parity with its Keras model, weight statistics."""
    src, run = result.source, result.run
    y_test, classifier = src.splits.y_test, src.classifier
    metric = "accuracy" if classifier else "mae"
    report: dict[str, Any] = {"test_samples": len(src.splits.x_test)}
    for side in result.sides():
        record = side.record or {}
        if record.get("failed"):
            raise ConversionError(f"converting the {side.name} model failed: {record['failed'][0]['error']}")
        arts = {a["precision"]: side.out.root / a["path"] for a in record.get("artifacts", [])}
        entry: dict[str, Any] = {"artifacts": {}}
        for precision, path in arts.items():
            entry["artifacts"][precision] = {
                "path": str(path.relative_to(run.root)), "size_bytes": path.stat().st_size,
                "gzip_bytes": gzip_size(path),
            }  # fmt: skip
        int8_outputs = load(arts["int8"]).run(src.splits.x_test)[0]
        entry[f"int8_{metric}"] = round(score(int8_outputs, y_test, classifier), 6)
        # how faithful the int8 file is to the Keras (or QAT) model it came from, measured as convert measures it
        kinds = {"output": "classifier" if classifier else "regressor"}
        reference = {"output": np.asarray(result.passed.outputs[side.name])}
        parity = compare(reference, {"output": int8_outputs}, kinds=kinds, precision="int8")
        parity.pop("within_tolerance", None)  # the file's verdict is convert's: one verdict per file
        entry["int8_parity"] = parity
        int8_record = next(a for a in record["artifacts"] if a["precision"] == "int8")
        entry["int8_verdict"] = {"verdict": int8_record["verdict"], "by": f"{side.out.root.name}/manifest.json"}
        entry["weights"] = weight_stats(arts["int8"])
        entry["weights_fp32"] = weight_stats(arts["fp32"]) if "fp32" in arts else None
        report[side.name] = entry
    return report


def budgets_broken(
    metrics: dict[str, float], limits: dict[str, float], int8_verdict: dict[str, str], metric: str
) -> list[str]:
    """Each figure of the optimized model and its int8 file that is worse than the budget allows, as a sentence:
    accuracy points lost against the model it started from (classifiers), the MAE's relative increase (others),
    and the int8 file's own convert verdict against the optimized Keras model.

    Example:
        >>> budgets_broken({"accuracy_before": 0.85, "accuracy_after": 0.45, "accuracy_int8_after": 0.84},
        ...                {"max_accuracy_drop": 0.02}, {"verdict": "pass"}, "accuracy")
        ['accuracy_after 0.450 is 0.400 below accuracy_before 0.850 (max_accuracy_drop 0.02)']
    """
    broken = []
    before = metrics[f"{metric}_before"]
    for name in (f"{metric}_after", f"{metric}_int8_after"):
        value = metrics[name]
        if metric == "accuracy" and before - value > limits["max_accuracy_drop"] + 1e-9:
            broken.append(
                f"{name} {value:.3f} is {before - value:.3f} below {metric}_before {before:.3f} "
                f"(max_accuracy_drop {limits['max_accuracy_drop']:g})"
            )
        elif metric == "mae" and value > before * (1 + limits["max_error_increase"]) + 1e-12:
            broken.append(
                f"{name} {value:.4g} is {value / before - 1:+.0%} over {metric}_before {before:.4g} "
                f"(max_error_increase {limits['max_error_increase']:g})"
            )
    if int8_verdict["verdict"] != "pass":
        broken.append(
            f"the optimized int8 file is {int8_verdict['verdict']} against its Keras model ({int8_verdict['by']})"
        )
    return broken


def score(outputs: np.ndarray, y: np.ndarray, classifier: bool) -> float:
    """Accuracy of a classifier's outputs, else the mean absolute error, against ``y``.

    Example:
        >>> score(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), classifier=True)
        0.5
    """
    if classifier:
        return float(np.mean(outputs.argmax(-1) == y))
    return float(np.mean(np.abs(outputs.reshape(y.shape) - y)))


def weight_stats(path: str | Path) -> dict[str, Any]:
    """Zeros, unique values and entropy of every weight tensor (constant, ≥ 2-D) in a TFLite file.

    ``sparsity`` is the fraction of exact zeros (the zero point, for quantized
    tensors) over all weight elements; per layer, ``unique`` counts distinct
    values in the tensor and ``unique_per_channel`` the most in one output
    channel (per-channel scales make clusters distinct across channels).
    ``entropy_bits`` is the Shannon entropy of the tensor's value histogram:
    the fewest bits per weight any coder of independent values (gzip's
    Huffman stage included) can spend on it, so it bounds what compression buys.

    Example:
        >>> weight_stats("model_int8.tflite")["sparsity"]  # doctest: +SKIP
        0.5
    """
    model = read_tflite(path)
    layers, zeros, total, bits = {}, 0, 0, 0.0
    dtypes = {"int8": np.int8, "float32": np.float32, "float16": np.float16, "uint8": np.uint8}
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if not tensor.is_constant or len(tensor.shape) < 2 or tensor.dtype not in dtypes:
                continue
            values = model.buffers[tensor.buffer].view(dtypes[tensor.dtype]).reshape(tensor.shape)
            zero = tensor.zero_points[0] if tensor.zero_points else 0
            n_zero = int(np.count_nonzero(values == zero))
            # The output-channel axis: the one the scales run along; else 0 (3 for depthwise [1, h, w, C]).
            sizes = [i for i, d in enumerate(values.shape) if len(tensor.scales) > 1 and d == len(tensor.scales)]
            axis = sizes[0] if sizes else (values.ndim - 1 if values.shape[0] == 1 else 0)
            channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
            per_channel = max(len(np.unique(c)) for c in channels)
            counts = np.unique(values, return_counts=True)[1]
            entropy = float(-np.sum(counts / values.size * np.log2(counts / values.size)))
            layers[tensor.name] = {
                "elements": int(values.size),
                "zeros": round(n_zero / values.size, 4),
                "unique": len(counts),
                "unique_per_channel": int(per_channel),
                "entropy_bits": round(entropy, 3),
            }
            zeros, total, bits = zeros + n_zero, total + values.size, bits + entropy * values.size
    return {
        "sparsity": round(zeros / max(total, 1), 4),
        "weights": int(total),
        "entropy_bits_per_weight": round(bits / max(total, 1), 3),
        "layers": layers,
    }


def gzip_size(path: str | Path) -> int:
    """Bytes of the file gzip-compressed (level 9): what sparsity and clustering buy on the wire.

    Example:
        >>> gzip_size("model_int8.tflite")  # doctest: +SKIP
        301234
    """
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))

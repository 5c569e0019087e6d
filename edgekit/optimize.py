"""``edgekit optimize``: pruning, clustering and QAT for Keras 3 models, through the tf_keras bridge.

The source model (a run directory from ``train``, or a ``.keras`` file with
``--data``) is rebuilt in tf_keras with nested models inlined, checked for
parity, optimized by the requested passes (each fine-tuned on the training
split), and written back:

- pruning and clustering keep the architecture, so their weights are copied
  back into the Keras 3 model (``model.keras``);
- QAT keeps its fake-quant graph, saved as a SavedModel (``model_qat/``) that
  converts to int8 from the QAT graph itself.

Both the source and the result are converted (fp32 and full int8 TFLite), so
the manifest holds what the passes bought on real artifacts: accuracy (or MAE)
of each int8 file on the test split, raw and gzip sizes, the fraction of zero
weights and the unique values per layer counted in the TFLite weight buffers.

Example:
    >>> m = optimize("runs/mobilenet_digits", prune=0.5, out="runs/mn_pruned")  # doctest: +SKIP
    >>> m["metrics"]["sparsity"] >= 0.49  # doctest: +SKIP
    True
"""

from __future__ import annotations

import gzip
import inspect
import json
import logging
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConversionError, InputError
from edgekit.manifest import now, prepare_run_dir, read_manifest, sha256_file, tool_versions, write_manifest

Progress = Callable[[str], None]
log = logging.getLogger(__name__)
# Fine-tuning rates when none is given. QAT starts from a converged model and its fake-quant noise: at 3e-4 one
# seed in three lost 1.8 points on the MobileNet digits model, at 1e-4 none did.
PASS_LEARNING_RATES = {"prune": 3e-4, "cluster": 3e-4, "qat": 1e-4}


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
    from edgekit.formats.tflite import read_tflite

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


def _source(
    source: str | Path, data: str | None, task: str | None, custom_objects: str | Path | None
) -> tuple[Path, Any, dict[str, Any], Any, dict[str, Any]]:
    """The Keras model file and the model loaded from it, the train manifest's task, the splits, the detected task.

    Without a recipe the split follows the task: stratified for classifiers,
    random for regressors and reconstruction models.
    """
    from edgekit.convert import resolve_source
    from edgekit.converters.source import detect_task, load_keras
    from edgekit.datasets import load_splits
    from edgekit.recipes import DataConfig, recipe_from_dict

    model_path = resolve_source(source)
    trained = (read_manifest(source) or {}) if Path(source).is_dir() else {}
    if "recipe" in trained:
        recipe = recipe_from_dict(trained["recipe"])
        if data is not None:
            recipe.data.source = data
        family = recipe.family
        config, seed = recipe.data, recipe.train.seed
    elif data is not None:
        family, config, seed = "", DataConfig(source=data), 0
    else:
        raise InputError(f"{source}: no data to fine-tune on; pass --data (an .npz with x and y, or an image folder)")
    if family == "autoencoder":
        raise InputError(
            "optimize fine-tunes classifiers, regressors and reconstruction models; a trained anomaly scorer "
            "(input → score) is not supported yet: optimize its autoencoder with --data"
        )
    if model_path.suffix not in (".keras", ".h5"):
        raise InputError(f"{source}: optimize needs a Keras model (.keras, .h5 or a train run directory)")
    model = load_keras(model_path, custom_objects=custom_objects)
    detected = detect_task(model, given=task, run_task=trained.get("task"))
    if not family:
        family = "image_classifier" if detected["task"] == "classifier" else "regressor"
    splits = load_splits(config, family, seed)
    _check_targets(model, splits, detected["task"] == "classifier")
    return model_path, model, {"family": family, **trained.get("task", {})}, splits, detected


def fine_tune_loss(model_path: str | Path, classifier: bool) -> tuple[Any, str]:
    """The tf_keras loss to fine-tune with, and how it was chosen.

    A ``.keras`` file's ``compile_config`` loss (a name, or a serialized loss
    with its arguments, e.g. ``from_logits``) is rebuilt in tf_keras; without
    one, or when tf_keras has no such loss, the family default is used:
    sparse categorical cross-entropy for classifiers, MAE for forecasters.

    Example:
        >>> fine_tune_loss("runs/mobilenet_digits/model.keras", classifier=True)[1]  # doctest: +SKIP
        'sparse_categorical_crossentropy (family default)'
    """
    import tf_keras

    default = "sparse_categorical_crossentropy" if classifier else "mae"
    loss = None
    if Path(model_path).suffix == ".keras":
        with zipfile.ZipFile(model_path) as archive:
            loss = (json.loads(archive.read("config.json")).get("compile_config") or {}).get("loss")
    if loss is None:
        return default, f"{default} (family default)"
    try:
        if isinstance(loss, str):
            return tf_keras.losses.get(loss), f"{loss} (compile config)"
        cls = getattr(tf_keras.losses, loss["class_name"])
        accepted = set(inspect.signature(cls.__init__).parameters)
        args = {k: v for k, v in loss.get("config", {}).items() if k in accepted}
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items() if k not in ("name", "reduction"))
        return cls(**args), f"{loss['class_name']}({shown}) (compile config)"
    except Exception as exc:
        log.warning("the compiled loss %r has no tf_keras equivalent (%s); fine-tuning with %s", loss, exc, default)
        return default, f"{default} (family default; the compiled loss has no tf_keras equivalent)"


def _check_targets(model: Any, splits: Any, classifier: bool) -> None:
    """Refuse data whose targets do not fit the model's output for the task (class ids, or one value per output)."""
    from edgekit.runtime.base import format_shape

    out_shape, y = tuple(model.outputs[0].shape[1:]), splits.y_test
    if classifier:
        ok = y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and int(y.max()) < int(out_shape[-1])
        want = f"class ids below {out_shape[-1]}"
    else:
        ok = int(np.prod(y.shape[1:], dtype=np.int64)) == int(np.prod(out_shape, dtype=np.int64))
        want = f"one target per output value, {format_shape((None, *out_shape))}"
    if not ok:
        task = "classifier" if classifier else "regressor / autoencoder"
        raise InputError(f"the data's y {format_shape(y.shape)} ({y.dtype}) does not fit a {task}: it needs {want}")


def _score(outputs: np.ndarray, splits: Any, classifier: bool) -> float:
    if classifier:
        return float(np.mean(outputs.argmax(-1) == splits.y_test))
    return float(np.mean(np.abs(outputs.reshape(splits.y_test.shape) - splits.y_test)))


def optimize(
    source: str | Path,
    *,
    prune: float | None = None,
    prune_schedule: str = "polynomial",
    structured_2_4: bool = False,
    cluster: int | None = None,
    cluster_init: str = "kmeans++",
    qat: bool = False,
    leave_float: list[str] | None = None,
    data: str | None = None,
    epochs: int = 5,
    learning_rate: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
    out: str | Path | None = None,
    task: str | None = None,
    custom_objects: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Apply the requested passes (in the order prune → cluster → QAT) and return the run manifest.

    ``task`` overrides the detected task (it picks the split, the default
    loss and the score: accuracy for classifiers, MAE otherwise);
    ``custom_objects`` is a Python file defining the model's custom objects,
    as for ``convert``. Mixed-precision sources are rebuilt as float32 first.

    Example:
        >>> m = optimize("runs/lstm_sunspots", prune=0.5)  # doctest: +SKIP
        >>> m["metrics"]["mae_after"] <= 1.05 * m["metrics"]["mae_before"]  # doctest: +SKIP
        True
    """
    from edgekit.converters.tfmot_passes import ClusterConfig, PruneConfig, QatConfig

    if prune is None and cluster is None and not qat:
        raise InputError("nothing to do: pass --prune SPARSITY, --cluster N and/or --qat")
    if epochs < 1:
        raise InputError("--epochs must be >= 1")
    passes = {  # each config checks its own values, before any data or model is loaded
        "prune": PruneConfig(prune, prune_schedule, structured_2_4) if prune is not None else None,
        "cluster": ClusterConfig(cluster, cluster_init) if cluster is not None else None,
        "qat": QatConfig(list(leave_float or [])) if qat else None,
    }
    model_path, model, run_task, splits, detected = _source(source, data, task, custom_objects)
    run_dir = prepare_run_dir(out or Path("runs") / f"{model_path.parent.name or model_path.stem}_optimized")
    start = time.perf_counter()
    classifier = detected["task"] == "classifier"
    result = _run_passes(
        model_path, model, passes, splits, run_dir, epochs, learning_rate, batch_size, seed, classifier,
        progress,
    )  # fmt: skip
    metric = "accuracy" if classifier else "mae"
    report = _convert_and_measure(model_path, result, splits, run_dir, classifier, custom_objects, progress)
    pruned_layers = [v for v in report["after"]["weights"]["layers"].values() if v["zeros"] >= 0.1]
    metrics = {
        f"{metric}_before": result["before"],
        f"{metric}_after": result["after"],
        f"{metric}_int8_before": report["before"]["int8_" + metric],
        f"{metric}_int8_after": report["after"]["int8_" + metric],
        "sparsity": round(
            sum(v["zeros"] * v["elements"] for v in pruned_layers) / max(sum(v["elements"] for v in pruned_layers), 1),
            4,
        ),
    }
    manifest = {
        "edgekit_manifest": 1,
        "stage": "optimize",
        "created_at": now(),
        "source": {"path": str(model_path), "sha256": sha256_file(model_path)},
        "settings": {
            "passes": {k: vars(v) for k, v in passes.items() if v is not None},
            "epochs": epochs,
            "learning_rate": {k: learning_rate or PASS_LEARNING_RATES[k] for k, v in passes.items() if v is not None},
            "batch_size": batch_size,
            "seed": seed,
            "loss": result["loss"],
        },
        "bridge_max_abs_diff": result["bridge_max_abs_diff"],
        "batchnorm_folded_into": result["folded"],
        "metrics": metrics,
        "report": report,
        "task": run_task,
        "detected_task": detected,
        "history": result["history"],
        "seconds": round(time.perf_counter() - start, 1),
        "tools": tool_versions(),
        "artifacts": [result["artifact"]],
    }
    write_manifest(run_dir, manifest)
    return manifest


def _run_passes(
    model_path: Path,
    source_model: Any,
    passes: dict[str, Any],
    splits: Any,
    run_dir: Path,
    epochs: int,
    learning_rate: float | None,
    batch_size: int,
    seed: int,
    classifier: bool,
    progress: Progress | None,
) -> dict[str, Any]:
    """Bridge, run the passes with fine-tuning, write the result back; return scores and the artifact entry."""
    import keras
    import tf_keras

    from edgekit.converters.bridge import copy_weights_back, fold_batchnorm, to_tf_keras
    from edgekit.converters.source import as_float32
    from edgekit.converters.tfmot_passes import cluster, prune, quantize_aware
    from edgekit.train import save_calibration, save_test_split

    tf_keras.utils.set_random_seed(seed)
    model = as_float32(source_model)
    loss, loss_used = fine_tune_loss(model_path, classifier)
    outputs = {"before": model.predict(splits.x_test, verbose=0)}
    legacy, diff = to_tf_keras(model, [splits.x_test[:8]], flatten=True)
    for layer in legacy.layers:  # fine-tuning keeps BatchNorm statistics, as transfer learning did
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
    # Clusters must be the converted file's values: fold BatchNorm first, or conversion rescales them per channel.
    folded = fold_batchnorm(legacy, [splits.x_test[:8]]) if passes["cluster"] else []
    history: list[dict[str, Any]] = []
    steps = epochs * int(np.ceil(len(splits.x_train) / batch_size))

    def fine_tune_as(stage: str) -> Callable[[Any, list[Any]], None]:
        def fine_tune(wrapped: Any, callbacks: list[Any]) -> None:
            if progress:
                progress(f"{stage}: fine-tuning {epochs} epoch(s)")
            wrapped.compile(tf_keras.optimizers.Adam(learning_rate or PASS_LEARNING_RATES[stage]), loss)
            fit = wrapped.fit(
                splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val),
                epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=0,
            )  # fmt: skip
            history.append({"stage": stage, **{k: [float(v) for v in vs] for k, vs in fit.history.items()}})

        return fine_tune

    def scored(result: Any) -> Any:  # each pass's own test score, so a chain shows what each pass cost
        history[-1]["test_" + ("accuracy" if classifier else "mae")] = _score(
            result.predict(splits.x_test, verbose=0), splits, classifier
        )
        return result

    current = legacy
    if passes["prune"]:
        current = scored(prune(current, passes["prune"], fine_tune_as("prune"), steps))
    if passes["cluster"]:
        sparse = passes["prune"] is not None
        current = scored(cluster(current, passes["cluster"], fine_tune_as("cluster"), preserve_sparsity=sparse))
    if passes["qat"]:
        after = "cluster" if passes["cluster"] else "prune" if passes["prune"] else None
        current = quantize_aware(current, passes["qat"], fine_tune_as("qat"), after, passes["prune"] is not None)
        outputs["after"] = current.predict(splits.x_test, verbose=0)
        path = run_dir / "model_qat"
        current.save(str(path), save_format="tf")
        artifact = {"path": "model_qat", "format": "savedmodel", "role": "model"}
    else:
        copy_weights_back(current, model)
        outputs["after"] = model.predict(splits.x_test, verbose=0)
        keras.mixed_precision.set_global_policy("float32")
        path = run_dir / "model.keras"
        model.save(path)
        artifact = {"path": "model.keras", "format": "keras", "role": "model", "sha256": sha256_file(path)}
    save_calibration(run_dir, splits.x_train)
    save_test_split(run_dir, splits.x_test, splits.y_test)  # what ``edgekit validate`` of this folder scores on
    return {
        **{stage: round(_score(o, splits, classifier), 6) for stage, o in outputs.items()}, "outputs": outputs,
        "bridge_max_abs_diff": diff, "folded": folded, "loss": loss_used,
        "history": history, "artifact": artifact, "path": path,
    }  # fmt: skip


def _convert_and_measure(
    model_path: Path,
    result: dict[str, Any],
    splits: Any,
    run_dir: Path,
    classifier: bool,
    custom_objects: str | Path | None,
    progress: Progress | None,
) -> dict[str, Any]:
    """Convert source and result to fp32 + int8 TFLite; score the int8 files; sizes, gzip, zeros, unique values."""
    from edgekit.convert import convert
    from edgekit.parity import compare
    from edgekit.runtime import load

    metric = "accuracy" if classifier else "mae"
    report: dict[str, Any] = {"test_samples": len(splits.x_test)}
    for name, source, out in (
        ("before", model_path, run_dir / "baseline"),
        ("after", result["path"], run_dir / "convert"),
    ):
        if progress:
            progress(f"converting the {'source' if name == 'before' else 'optimized'} model")
        # A QAT graph is only meant as int8: a float file drops its fake-quant ops and differs from it (1.9 %)
        qat = name == "after" and result["artifact"]["format"] == "savedmodel"
        to = "tflite:int8" if qat else "tflite:fp32,tflite:int8"
        manifest = convert(source, out, to=to, calib=run_dir / "calib.npy", custom_objects=custom_objects)
        if manifest["failed"]:
            raise ConversionError(f"converting the {name} model failed: {manifest['failed'][0]['error']}")
        arts = {a["precision"]: out / a["path"] for a in manifest["artifacts"]}
        entry: dict[str, Any] = {"artifacts": {}}
        for precision, path in arts.items():
            entry["artifacts"][precision] = {
                "path": str(path.relative_to(run_dir)), "size_bytes": path.stat().st_size,
                "gzip_bytes": gzip_size(path),
            }  # fmt: skip
        int8_outputs = load(arts["int8"]).run(splits.x_test)[0]
        entry[f"int8_{metric}"] = round(_score(int8_outputs, splits, classifier), 6)
        # how faithful the int8 file is to the Keras (or QAT) model it came from, measured as convert measures it
        kinds = {"output": "classifier" if classifier else "regressor"}
        reference = {"output": np.asarray(result["outputs"][name])}
        entry["int8_parity"] = compare(reference, {"output": int8_outputs}, kinds=kinds, precision="int8")
        entry["weights"] = weight_stats(arts["int8"])
        entry["weights_fp32"] = weight_stats(arts["fp32"]) if "fp32" in arts else None
        report[name] = entry
    return report

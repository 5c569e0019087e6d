"""``make bench``: measure edgekit's figures on this machine and write ``bench/results.json``.

Each section is one function returning a dict of named figures. Ratios are
measured within one run (interleaved where it matters): these machines are noisy.

Example:
    $ python bench/run.py --out bench/results.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from edgekit.bench import benchmark, harness_overhead
from edgekit.common.cpu import cpu_features
from edgekit.common.io import write_json
from edgekit.doctor import package_versions

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the convert section builds its models with tests/keras_models.py
CORAL = Path(os.environ.get("EDGEKIT_SHARED", REPO.parent / "shared")) / "coral"
CPU_MODELS = [
    "mobilenet_v1_0.25_128_quant",
    "mobilenet_v2_1.0_224_quant",
    "keras_lstm_mnist_ptq",
    "deeplabv3_mnv2_dm05_pascal_quant",
]
log = logging.getLogger("edgekit.bench")


def runtime_section() -> dict[str, Any]:
    """Harness overhead against a bare invoke() loop, and latency of the Coral CPU models."""
    overhead = harness_overhead(CORAL / "mobilenet_v1_0.25_128_quant.tflite", threads=1, runs=300, rounds=7)
    log.info("harness overhead ratio %.4f", overhead["ratio"])
    latency = {}
    for name in CPU_MODELS:
        path = CORAL / f"{name}.tflite"
        for threads in (1, 2):
            r = benchmark(path, threads=threads, runs=100 if "deeplab" not in name else 20, warmup=5)
            latency[f"{name}@{threads}t"] = {
                "size_bytes": path.stat().st_size,
                "init_ms": r["init_ms"],
                "latency_ms": r["latency_ms"],
                "throughput_per_s": r["throughput_per_s"],
            }
            log.info("%s threads=%d p50 %.3f ms", name, threads, r["latency_ms"]["p50"])
    return {"harness_overhead": overhead, "latency": latency}


def convert_section() -> dict[str, Any]:
    """Conversion time and size per artifact, parity, and the warm-rerun ratio (same source, same settings)."""
    import tempfile
    import time

    import numpy as np

    from edgekit.stages.convert import convert
    from tests import keras_models

    tokens = "tflite:fp32,tflite:fp16,tflite:dynamic,tflite:int8,tflite:16x8,onnx:fp32,onnx:int8"
    section: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, build in (
            ("mobilenet_v2_035_96", keras_models.mobilenet_digits),
            ("stacked_lstm", keras_models.stacked_lstm),
            ("dense_autoencoder", keras_models.dense_autoencoder),
        ):
            path, x = build(d / f"{name}.keras")
            np.save(d / f"{name}_calib.npy", x)
            start = time.perf_counter()
            cold = convert(path, d / name, to=tokens, calib=d / f"{name}_calib.npy")
            cold_s = time.perf_counter() - start
            start = time.perf_counter()
            warm = convert(path, d / name, to=tokens, calib=d / f"{name}_calib.npy")
            warm_s = time.perf_counter() - start
            fp32 = next(a["size_bytes"] for a in cold["artifacts"] if a["precision_token"] == "tflite:fp32")
            per_tensor = convert(
                path, d / f"{name}_per_tensor", to="tflite:int8", calib=d / f"{name}_calib.npy",
                int8_granularity="per-tensor",
            )["artifacts"][0]  # fmt: skip
            section[name] = {
                "route": cold["conversion"]["route"],
                "cold_seconds": round(cold_s, 2),
                "warm_seconds": round(warm_s, 3),
                "warm_over_cold": round(warm_s / cold_s, 4),
                "all_reused_warm": all(a["reused"] for a in warm["artifacts"]),
                "artifacts": {
                    a["precision_token"]: {
                        "convert_seconds": a["convert_seconds"],
                        "size_bytes": a["size_bytes"],
                        "size_vs_tflite_fp32": round(a["size_bytes"] / fp32, 3),
                        "parity": {k: v for k, v in a["parity"].items() if k != "check_seconds"},
                    }
                    for a in cold["artifacts"]
                },
                "failed": cold["failed"],
                "tflite:int8 per-tensor": {
                    "size_bytes": per_tensor["size_bytes"],
                    "size_vs_tflite_fp32": round(per_tensor["size_bytes"] / fp32, 3),
                    "parity": {k: v for k, v in per_tensor["parity"].items() if k != "check_seconds"},
                },
            }
            log.info("%s: cold %.1f s, warm %.2f s", name, cold_s, warm_s)
    return section


QUALITY_BARS = {
    "mobilenet_digits": ("accuracy", ">=", 0.95),
    "lstm_sunspots": ("mae_vs_naive", "<=", 0.8),
    "autoencoder_breast_cancer": ("roc_auc", ">=", 0.90),
    "autoencoder_sensor": ("roc_auc", ">=", 0.90),
    "lstm_digits_rows": ("accuracy", ">=", 0.9),
}


SEEDS = (0, 1, 2)
MARGIN = 0.02  # a recipe must clear its bar by this much on every seed: float results differ between CPUs


def train_section() -> dict[str, Any]:
    """Each shipped recipe trained on its shipped data with seeds 0, 1, 2: test metrics, the worst seed against
    the issue's bar and margin, seconds; and whether mixed_bfloat16 would pay off on this CPU (median
    training-step time against float32)."""
    import dataclasses
    import tempfile
    import time

    from edgekit.buildlane.training import measure_step_seconds
    from edgekit.recipes import load_recipe
    from edgekit.stages.train import train

    section: dict[str, Any] = {"recipes": {}, "seeds": list(SEEDS), "margin": MARGIN}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (metric, op, bar) in QUALITY_BARS.items():
            recipe = load_recipe(REPO / "models" / f"{name}.yaml")
            per_seed = {}
            for seed in SEEDS:
                start = time.perf_counter()
                seeded = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, seed=seed))
                manifest = train(seeded, out=Path(tmp) / f"{name}_{seed}")
                per_seed[seed] = {
                    "metrics": manifest["metrics"],
                    "precision": manifest["precision"]["policy"],
                    "seconds": round(time.perf_counter() - start, 1),
                }
                log.info("%s seed %d: %s = %.4f (bar %s %s)", name, seed, metric, manifest["metrics"][metric], op, bar)
            values = [r["metrics"][metric] for r in per_seed.values()]
            worst = min(values) if op == ">=" else max(values)
            margin = worst - bar if op == ">=" else bar - worst
            section["recipes"][name] = {
                "bar": f"{metric} {op} {bar}",
                "worst_seed_value": round(worst, 4),
                "margin": round(margin, 4),
                "meets_bar_with_margin": margin >= MARGIN,
                "per_seed": per_seed,
            }
    fp32 = [measure_step_seconds("float32") for _ in range(3)]
    bf16 = [measure_step_seconds("mixed_bfloat16") for _ in range(3)]
    section["mixed_bfloat16_vs_float32"] = {
        "float32_step_ms": round(1e3 * min(fp32), 3),
        "mixed_bfloat16_step_ms": round(1e3 * min(bf16), 3),
        "bf16_over_fp32": round(min(bf16) / min(fp32), 3),
        "cpu_bf16_instructions": [k for k, here in cpu_features().items() if here and k.endswith("bf16")],
    }
    return section


def optimize_recorded(source: Any, **options: Any) -> dict[str, Any]:
    """An optimize record, also when it broke its budget: the bench reports what happened."""
    from edgekit.errors import BudgetExceededError
    from edgekit.pipeline import optimize

    try:
        return optimize(source, **options)
    except BudgetExceededError as exc:
        return exc.report


def optimize_section() -> dict[str, Any]:
    """The issue-5 figures: each pass on the MobileNet digits model (and 50 % pruning of the LSTM forecaster),
    with accuracy before / after, int8 accuracy against post-training int8, raw and gzip sizes, sparsity and
    the int8 weights' entropy; pruning swept over sparsities, QAT repeated over three seeds."""
    import tempfile

    from edgekit.stages.train import train

    def summary(m: dict[str, Any]) -> dict[str, Any]:
        report = m["report"]
        sizes = {
            f"{stage}_{p}": {k: report[stage]["artifacts"][p][k] for k in ("size_bytes", "gzip_bytes")}
            for stage in ("before", "after") for p in ("fp32", "int8") if p in report[stage]["artifacts"]
        }  # fmt: skip
        extra = {
            f"{stage}_int8_top1_agreement": round(report[stage]["int8_parity"]["top1_agreement"], 4)
            for stage in ("before", "after") if "top1_agreement" in report[stage]["int8_parity"]
        }  # fmt: skip
        entropy = {f"{stage}_int8_entropy_bits": report[stage]["weights"]["entropy_bits_per_weight"]
                   for stage in ("before", "after")}  # fmt: skip
        return {"metrics": {**m["metrics"], **extra, **entropy}, "sizes": sizes, "seconds": m["seconds"],
                "passes": m["settings"]["passes"], "verdict": m["verdict"],
                "budgets_broken": m["budgets_broken"]}  # fmt: skip

    section: dict[str, Any] = {}
    runs: dict[str, dict[str, Any]] = {
        **{f"mobilenet_prune_{round(100 * p)}": {"prune": p, "epochs": 16} for p in (0.5, 0.6, 0.7, 0.8)},
        "mobilenet_cluster_16": {"cluster": 16, "epochs": 2},
        **{f"mobilenet_qat_seed_{seed}": {"qat": True, "epochs": 2, "seed": seed} for seed in (0, 1, 2)},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        train(REPO / "models" / "mobilenet_digits.yaml", out=d / "mn")
        for name, options in runs.items():
            section[name] = summary(optimize_recorded(d / "mn", out=d / name, **options))
            log.info("%s: %s", name, section[name]["metrics"])
        train(REPO / "models" / "lstm_sunspots.yaml", out=d / "lstm")
        m = optimize_recorded(d / "lstm", prune=0.5, epochs=20, learning_rate=1e-3, out=d / "lstm_prune_50")
        section["lstm_prune_50"] = summary(m)

    def points(a: float, b: float) -> float:
        return round(100 * (a - b), 2)

    def gzip_ratio(run: dict[str, Any], size: str, over: str) -> float:
        return round(run["sizes"][size]["gzip_bytes"] / run["sizes"][over]["gzip_bytes"], 3)

    s = section
    prune, clustered = s["mobilenet_prune_50"], s["mobilenet_cluster_16"]
    qat = [s[f"mobilenet_qat_seed_{seed}"]["metrics"] for seed in (0, 1, 2)]
    qat_gain = [points(q["accuracy_int8_after"], q["accuracy_int8_before"]) for q in qat]
    section["bars"] = {
        "prune_50_int8_accuracy_drop_points": points(
            prune["metrics"]["accuracy_before"], prune["metrics"]["accuracy_int8_after"]),
        "prune_50_int8_gzip_over_unpruned_int8_gzip": gzip_ratio(prune, "after_int8", "before_int8"),
        "prune_sweep": {
            name.rsplit("_", 1)[1]: {
                "int8_gzip_over_unpruned_int8_gzip": gzip_ratio(s[name], "after_int8", "before_int8"),
                "int8_entropy_bits_over_unpruned": round(
                    s[name]["metrics"]["after_int8_entropy_bits"] / s[name]["metrics"]["before_int8_entropy_bits"], 3),
                "int8_accuracy_drop_points": points(
                    s[name]["metrics"]["accuracy_before"], s[name]["metrics"]["accuracy_int8_after"]),
            }
            for name in s if name.startswith("mobilenet_prune_")
        },
        "qat_int8_minus_ptq_int8_points_per_seed": qat_gain,
        "qat_int8_minus_ptq_int8_points_mean": round(sum(qat_gain) / len(qat_gain), 2),
        "cluster_16_fp32_gzip_over_fp32_gzip": gzip_ratio(clustered, "after_fp32", "before_fp32"),
        "cluster_16_int8_gzip_over_fp32_gzip": gzip_ratio(clustered, "after_int8", "before_fp32"),
        "cluster_16_accuracy_drop_points": points(
            clustered["metrics"]["accuracy_before"], clustered["metrics"]["accuracy_after"]),
        "cluster_16_int8_accuracy_drop_points": points(
            clustered["metrics"]["accuracy_before"], clustered["metrics"]["accuracy_int8_after"]),
        "lstm_prune_50_int8_mae_increase": round(
            s["lstm_prune_50"]["metrics"]["mae_int8_after"] / s["lstm_prune_50"]["metrics"]["mae_int8_before"] - 1, 4),
    }  # fmt: skip
    return section


COVERAGE_FAMILIES = (
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0", "EfficientNetV2B0",
    "ResNet50", "DenseNet121", "NASNetMobile", "ConvNeXtTiny",
)  # fmt: skip


def _application_classifier(family: str, size: int, classes: int, x: Any, y: Any, folder: Path,
                            facts: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A ``keras.applications`` base (random init) with a new head trained one epoch on ``x``, saved as .keras."""
    import keras

    keras.utils.set_random_seed(0)
    base = getattr(keras.applications, family)(input_shape=(size, size, 3), weights=None, include_top=False)
    image = keras.Input((size, size, 3), name="image")
    h = keras.layers.GlobalAveragePooling2D()(base(keras.layers.Rescaling(1 / 127.5, offset=-1)(image)))
    model = keras.Model(image, keras.layers.Dense(classes, activation="softmax", name="probs")(h))
    for layer in model._flatten_layers():  # one epoch: at Keras' 0.99 the moving statistics stay at init,
        if isinstance(layer, keras.layers.BatchNormalization):  # and inference predicts one class
            layer.momentum = 0.9
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    if facts is not None:
        facts.update(train_accuracy=round(float(fit.history["accuracy"][-1]), 4), params=model.count_params())
    path = folder / f"{family}.keras"
    model.save(path)
    return path


def coverage_section(size: int = 64, classes: int = 5) -> dict[str, Any]:
    """``keras.applications`` families a user might bring, each with a new head trained one epoch on digits
    (random-init base, {size}×{size}): converted to fp32 / int8 TFLite and fp32 ONNX (verdict, size, seconds),
    then pruned 50 % through the tf_keras bridge (sparsity, accuracy before / after, or the refusal)."""
    import tempfile
    import time

    import numpy as np

    from edgekit.stages.convert import convert
    from tests.keras_models import digits_images

    x, y = digits_images(size)
    keep = y < classes
    x, y = x[keep], y[keep]
    section: dict[str, Any] = {"input": f"{size}x{size}x3", "classes": classes, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "calib.npy", x[:300])
        np.savez(Path(tmp) / "data.npz", x=x, y=y)
        for family in COVERAGE_FAMILIES:
            entry: dict[str, Any] = {}
            start = time.perf_counter()
            path = _application_classifier(family, size, classes, x, y, Path(tmp), entry)
            entry["train_seconds"] = round(time.perf_counter() - start, 1)
            start = time.perf_counter()
            manifest = convert(
                path, Path(tmp) / family, to="tflite:fp32,tflite:int8,onnx:fp32", calib=Path(tmp) / "calib.npy"
            )
            entry["convert_seconds"] = round(time.perf_counter() - start, 1)
            entry["artifacts"] = {
                a["precision_token"]: {
                    "verdict": a["verdict"], "size_bytes": a["size_bytes"], "seconds": a["convert_seconds"],
                    "check": {k: v.get("check") for k, v in a["parity"].get("outputs", {}).items()},
                }
                for a in manifest["artifacts"]
            }  # fmt: skip
            entry["artifacts"].update(
                {f["token"]: {"verdict": "failed", "error": f["error"]} for f in manifest["failed"]}
            )
            start = time.perf_counter()
            try:
                pruned = optimize_recorded(path, prune=0.5, epochs=1, data=str(Path(tmp) / "data.npz"),
                                           out=Path(tmp) / "p")  # fmt: skip
                entry["prune_50"] = {
                    "sparsity": pruned["metrics"]["sparsity"],
                    "accuracy_before": pruned["metrics"]["accuracy_before"],
                    "accuracy_after": pruned["metrics"]["accuracy_after"],
                    "accuracy_int8_after": pruned["metrics"]["accuracy_int8_after"],
                    "bridge_max_abs_diff": pruned["bridge_max_abs_diff"],
                    "verdict": pruned["verdict"], "budgets_broken": pruned["budgets_broken"],
                }  # fmt: skip
            except Exception as exc:  # recorded, not hidden: the table names the layer or op and the tool
                entry["prune_50"] = {"failed": f"{type(exc).__name__}: {exc}"}
            entry["prune_50"]["seconds"] = round(time.perf_counter() - start, 1)
            section["models"][family] = entry
            log.info("%s: %s; prune %s", family, {k: v["verdict"] for k, v in entry["artifacts"].items()},
                     entry["prune_50"].get("sparsity", entry["prune_50"].get("failed")))  # fmt: skip
    return section


def user_models_section() -> dict[str, Any]:
    """Model kinds users bring that edgekit was not built around (issue 20), each converted to every token it
    takes; each row says what was checked against what: ``verdicts`` are convert's own checks (held-out
    calibration rows against the Keras model), ``padding`` compares each file on padded tokens with Keras on the
    unpadded ones, ``refusal`` is the one line a model that cannot be checked gets."""
    import tempfile
    import time

    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from edgekit.errors import EdgekitError
    from edgekit.runtime import load
    from edgekit.stages.convert import convert
    from tests import keras_models
    from tests.convert.test_convert_sources import SAMPLING_LAYER, SUBCLASSED_MODEL

    def converted(path: Path, calib: Any, folder: Path, **options: Any) -> dict[str, Any]:
        np.save(folder / "calib.npy", calib)
        start = time.perf_counter()
        try:
            m = convert(path, folder / "run", calib=folder / "calib.npy", **options)
        except EdgekitError as exc:
            return {"refusal": str(exc), "seconds": round(time.perf_counter() - start, 1)}
        return {
            "route": m["conversion"]["route"], "inputs": [i["name"] for i in m["conversion"]["inputs"]],
            "outputs": m["conversion"]["outputs"], "seconds": round(time.perf_counter() - start, 1),
            "verdicts": {a["precision_token"]: a["verdict"] for a in m["artifacts"]}
            | {f["token"]: f"failed: {f['error']}" for f in m["failed"]},
            "_artifacts": {a["precision_token"]: folder / "run" / a["path"] for a in m["artifacts"]},
        }  # fmt: skip

    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokens = "tflite:fp32,tflite:dynamic,tflite:int8,onnx:fp32,onnx:int8"
        (root / "masked").mkdir()
        path, tokens_x, _ = keras_models.masked_token_lstm(root / "masked" / "m.keras")
        row = converted(path, tokens_x[:300], root / "masked", to=tokens)
        model = keras.saving.load_model(path)
        pixels = load_digits().data.astype(np.int32)[-60:] + 1
        truth = np.asarray(keras.Sequential([keras.Input((None,), dtype="int32"), *model.layers])(pixels))
        padding = {}
        for token, file in row.pop("_artifacts").items():
            runner, worst = load(file), 0.0
            for offset in (0, 7, 16):
                padded = np.zeros((60, 80), np.int32)
                padded[:, offset : offset + 64] = pixels
                got = np.concatenate([runner.run(r[None])[0] for r in padded])
                worst = max(worst, float(np.abs(got - truth).max()))
            padding[token] = {"max_abs_vs_unpadded_keras": worst, "top1_agreement": float(np.mean(
                got.argmax(1) == truth.argmax(1)))}  # fmt: skip
        rows["masked_embedding_lstm"] = {**row, "padding": padding,
                                         "checked": "each file on tokens at offsets 0/7/16 in 80 steps of padding "
                                                    "against Keras on the 64 unpadded tokens"}  # fmt: skip
        for name, source, objects, build, options in (
            ("subclassed_model", SUBCLASSED_MODEL, "TinyClassifier", lambda ns, x, y: ns(name="tiny"), {}),
            ("vae_sampling", SAMPLING_LAYER, "Sampling", None, {}),
            ("vae_sampling_mean_path", SAMPLING_LAYER, "Sampling", None, {"outputs": "z_mean,z_log_var"}),
        ):
            folder = root / name
            folder.mkdir()
            (folder / "objects.py").write_text(source)
            namespace: dict[str, Any] = {}
            exec(source, namespace)
            x = (load_digits().data / 16.0).astype(np.float32)
            y = load_digits().target
            keras.utils.set_random_seed(0)
            if build is not None:
                model = build(namespace[objects], x, y)
                model.compile("adam", "sparse_categorical_crossentropy")
                model.fit(x, y, epochs=5, verbose=0)
            else:
                pixels_in = keras.Input((64,), name="pixels")
                h = keras.layers.Dense(32, activation="relu")(pixels_in)
                z_mean, z_log_var = keras.layers.Dense(4, name="z_mean")(h), keras.layers.Dense(4, name="z_log_var")(h)
                z = namespace[objects](name="sampling")([z_mean, z_log_var])
                model = keras.Model(pixels_in, keras.layers.Dense(64, activation="sigmoid")(z), name="vae")
            model.save(folder / "m.keras")
            row = converted(folder / "m.keras", x[:300], folder, to="tflite:fp32,tflite:int8,onnx:fp32",
                            custom_objects=str(folder / "objects.py"), **options)  # fmt: skip
            row.pop("_artifacts", None)
            rows[name] = {**row, "checked": "convert's own check: held-out calibration rows against the Keras model"}
        folder = root / "grouped"
        folder.mkdir()
        path, x = keras_models.grouped_conv_digits(folder / "m.keras")
        row = converted(path, x[:300], folder, to="tflite:fp32,tflite:int8,onnx:fp32,onnx:int8")
        row.pop("_artifacts", None)
        rows["grouped_convolutions"] = {**row, "checked": "convert's own check against the Keras model"}
    return {"models": rows}


QUANTIZED = "tflite:fp32,tflite:int8,tflite:mixed"
EVERY_TFLITE = "tflite:fp32,tflite:fp16,tflite:dynamic,tflite:int8,tflite:16x8,tflite:mixed"  # the zoo: LSTMs too
ZOO = ("mobilenet_digits", "lstm_digits_rows", "lstm_sunspots", "autoencoder_breast_cancer", "autoencoder_sensor")


def _quantized_figures(convert_record: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """fp32, full int8 and mixed side by side: main metric, agreement, p50 latency and size (ratios against
    fp32 and full int8), the mixed file's float layers, budget and search time."""
    from edgekit.common.metrics import agreement_figure, main_metric

    cells = {r["precision"]: r for r in report["results"] if r["status"] == "measured" and r["threads"] == 1}
    kinds = {name: out["kind"] for name, out in report["outputs"].items()}
    figures: dict[str, Any] = {"reference": report["reference"].get("metrics") if report.get("reference") else None}
    for precision, cell in cells.items():
        output, metrics = next(iter(cell["metrics"].items()), (None, {}))
        name = main_metric(kinds[output], metrics)[0] if output else None
        figures[precision] = {
            "metric": {name: metrics.get(name)} if name else None,
            "agreement": dict([agreement_figure(a) for a in cell["agreement"].values()][:1]),
            "latency_p50_ms": cell["latency_ms"]["p50"], "size_bytes": cell["size_bytes"],
        }  # fmt: skip
    for precision, against in (("int8", "fp32"), ("mixed", "fp32"), ("mixed", "int8")):
        if precision in figures and against in figures:
            mine, theirs = figures[precision], figures[against]
            mine[f"latency_vs_{against}"] = round(mine["latency_p50_ms"] / theirs["latency_p50_ms"], 3)
            mine[f"size_vs_{against}"] = round(mine["size_bytes"] / theirs["size_bytes"], 3)
    for a in convert_record["artifacts"]:
        if a["precision"] == "mixed":
            figures["mixed"].update(float_layers=a["float_layers"], budget=a["budget"],
                                    search_seconds=a["search"]["search_seconds"],
                                    candidates=len(a["search"]["candidates"]))  # fmt: skip
    for f in convert_record["failed"]:
        precision = f["token"].split(":")[1]
        figures[precision] = {"failed": f["error"], "search_seconds": (f.get("search") or {}).get("search_seconds")}
    return figures


def _validated(sources: list[Path], out: Path, **options: Any) -> dict[str, Any]:
    """``edgekit validate``'s report, also when a recipe budget broke (the figures are what this section wants)."""
    from edgekit.errors import BudgetExceededError
    from edgekit.stages.validate import validate

    try:
        return validate(sources, out=out, **options)
    except BudgetExceededError:
        return json.loads((out / "report.json").read_text())


def quantization_section(size: int = 64, classes: int = 5) -> dict[str, Any]:
    """Full int8 against ``tflite:mixed`` on every zoo model (budget: the recipe's ``validate.budgets``, measured on
    its test split; fp16, dynamic and 16x8 too, for the fused LSTMs) and each ``keras.applications`` family of
    the coverage table (agreement >= 0.99 on the digits data): metric, agreement, float layers, latency and
    size against fp32 and full int8, search time."""
    import tempfile

    import numpy as np

    from edgekit.stages.convert import convert
    from edgekit.stages.train import train
    from tests.keras_models import digits_images

    section: dict[str, Any] = {"zoo": {}, "applications": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ZOO:
            run_dir = folder / name
            train(REPO / "models" / f"{name}.yaml", out=run_dir)
            record = convert(run_dir, run_dir / "convert", to=EVERY_TFLITE, calib=run_dir / "calib.npy")
            report = _validated([run_dir], threads=[1], out=run_dir / "validate")
            section["zoo"][name] = _quantized_figures(record, report)
            log.info("%s: %s", name, section["zoo"][name].get("mixed"))
        x, y = digits_images(size)
        keep = y < classes
        np.save(folder / "calib.npy", x[keep][:300])
        np.savez(folder / "data.npz", x=x[keep], y=y[keep])
        for family in COVERAGE_FAMILIES:
            path = _application_classifier(family, size, classes, x[keep], y[keep], folder)
            record = convert(
                path, folder / family, to=QUANTIZED, calib=folder / "calib.npy", data=str(folder / "data.npz")
            )
            report = _validated([folder / family], data=folder / "data.npz", threads=[1], out=folder / family / "v",
                                task="classifier")  # fmt: skip
            section["applications"][family] = _quantized_figures(record, report)
            log.info("%s: %s", family, section["applications"][family].get("mixed"))
    return section


def _mobilenet_v2_224(folder: Path) -> dict[str, Path]:
    """Random-init MobileNetV2 1.0/224 (raw 0..255 pixels in) as fp32 and full-int8 TFLite via ``edgekit convert``."""
    import keras
    import numpy as np

    from edgekit.stages.convert import convert

    keras.utils.set_random_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input((224, 224, 3), name="image")
    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=1000)
    model = keras.Model(inputs, base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)))
    model.save(folder / "mobilenet_v2_224.keras")
    np.save(folder / "calib.npy", np.random.default_rng(0).uniform(0, 255, (64, 224, 224, 3)).astype(np.float32))
    manifest = convert(folder / "mobilenet_v2_224.keras", folder / "convert", to="tflite:fp32,tflite:int8",
                       calib=folder / "calib.npy", calib_samples=48, check_samples=16)  # fmt: skip
    return {a["precision"]: folder / "convert" / a["path"] for a in manifest["artifacts"]}


def onnx_int8_section() -> dict[str, Any]:
    """Issue 30: MobileNetV2 1.0/224 (random init) to fp32 and int8 in both formats by ``edgekit convert``, each
    pair's int8-over-fp32 speed-up at one thread, all four files timed in one run, interleaved (the CPU's
    features recorded beside: ONNX Runtime's int8 kernels depend on VNNI)."""
    import tempfile

    import numpy as np

    from edgekit.runtime import load
    from edgekit.stages.convert import convert

    folder = Path(tempfile.mkdtemp(prefix="edgekit-bench-onnx-int8-"))
    _mobilenet_v2_224(folder)
    tokens = "tflite:fp32,tflite:int8,onnx:fp32,onnx:int8"
    manifest = convert(folder / "mobilenet_v2_224.keras", folder / "both", calib=folder / "calib.npy", to=tokens,
                       calib_samples=48, check_samples=16)  # fmt: skip
    runners = {a["precision_token"]: load(folder / "both" / a["path"], threads=1) for a in manifest["artifacts"]}
    x = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    times: dict[str, list[float]] = {token: [] for token in runners}
    for _ in range(40):  # interleaved: a noisy stretch of the machine slows every file alike
        for token, runner in runners.items():
            start = time.perf_counter()
            runner.run(x)
            times[token].append(time.perf_counter() - start)
    p50 = {token: round(float(np.median(t[5:])) * 1e3, 3) for token, t in times.items()}
    return {
        "model": "MobileNetV2 1.0/224, random init, 0..255 input", "threads": 1, "cpu_features": cpu_features(),
        "p50_ms": p50,
        "int8_speedup": {fmt: round(p50[f"{fmt}:fp32"] / p50[f"{fmt}:int8"], 2) for fmt in ("tflite", "onnx")},
        "onnx_int8_scheme": "QDQ, uint8 activations, int8 per-channel weights (7-bit: reduce_range)",
        "verdicts": {a["precision_token"]: a["verdict"] for a in manifest["artifacts"]},
    }  # fmt: skip


def _bare_runtime_seconds(path: Path, x: Any, threads: int) -> float:
    """Seconds a bare LiteRT loop (set_tensor, invoke, get_tensor) takes over the rows of ``x``."""
    import time

    from edgekit.runtime import load

    with load(path, threads=threads) as runner:
        arrays = runner.bind(x)
        interp = runner.raw_interpreter()
        index_in, index_out = runner._in_idx[0], runner._out_idx[0]
        for i in range(10):  # the same warm-up validate gives every cell
            interp.set_tensor(index_in, arrays[0][i : i + 1])
            interp.invoke()
        start = time.perf_counter()
        for i in range(len(arrays[0])):
            interp.set_tensor(index_in, arrays[0][i : i + 1])
            interp.invoke()
            interp.get_tensor(index_out)
        return time.perf_counter() - start


def validate_section() -> dict[str, Any]:
    """``edgekit validate`` on the demo models (test split, beside the Keras reference), int8 vs fp32 latency
    of MobileNetV2 1.0/224 and of the demo MobileNet at 1 and 2 threads, and what validating 1,000 samples
    costs against the bare runtime on the same samples."""
    import tempfile
    import time

    import numpy as np

    from edgekit.pipeline import run
    from edgekit.stages.validate import validate

    section: dict[str, Any] = {"demo_models": {}, "int8_vs_fp32_latency": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("mobilenet_digits", "lstm_sunspots", "autoencoder_breast_cancer", "autoencoder_sensor"):
            report = run(REPO / "models" / f"{name}.yaml", out=folder / name)["validate"]
            section["demo_models"][name] = {
                "samples": report["data"]["samples"],
                "keras_reference": report["reference"]["metrics"],
                "artifacts": {
                    f"{Path(r['artifact']).name}@{r['threads']}t": {
                        "metrics": {o: {k: v for k, v in m.items() if k != "confusion_matrix"}
                                    for o, m in r["metrics"].items()},
                        "agreement": r["agreement"], "latency_ms": r["latency_ms"], "size_bytes": r["size_bytes"],
                        "peak_rss_mb": r["peak_rss_mb"],
                    }
                    for r in report["results"] if r["status"] == "measured"
                },
                "budgets": report["budgets"],
                "budgets_broken": [b["message"] for b in report["budgets_broken"]],
            }  # fmt: skip
            log.info("%s: %d budget(s) broken", name, len(report["budgets_broken"]))
            if name == "mobilenet_digits":
                section["int8_vs_fp32_latency"]["demo_mobilenet_digits"] = _latency_ratios(report)
        artifacts = _mobilenet_v2_224(folder / "mnv2")
        rng = np.random.default_rng(1)
        np.savez(folder / "mnv2" / "x200.npz", x=rng.integers(0, 256, (200, 224, 224, 3)).astype(np.uint8))
        report = validate(list(artifacts.values()), data=folder / "mnv2" / "x200.npz", threads=[1, 2],
                          task="classifier", out=folder / "mnv2" / "report", reference=False)  # fmt: skip
        section["int8_vs_fp32_latency"]["mobilenet_v2_1.0_224"] = _latency_ratios(report)
        log.info("int8 vs fp32 p50 speed-up: %s", section["int8_vs_fp32_latency"])
        # validating one artifact on 1,000 samples against the bare runtime loop over the same samples
        section["validate_cost_1000_samples"] = {"bar": "< 2"}
        with np.load(folder / "mobilenet_digits" / "test.npz") as f:
            digits = np.resize(f["x"], (1000, *f["x"].shape[1:]))
        for name, path, x in (
            ("mobilenet_v2_1.0_224_int8", artifacts["int8"], rng.integers(0, 256, (1000, 224, 224, 3), np.uint8)),
            ("demo_mobilenet_digits_int8", folder / "mobilenet_digits" / "convert" / "model_int8.tflite", digits),
        ):
            np.savez(folder / "x1000.npz", x=x)
            start = time.perf_counter()
            validate([path], data=folder / "x1000.npz", task="classifier", out=folder / "r1000", reference=False)
            validate_s = time.perf_counter() - start
            bare_s = _bare_runtime_seconds(path, x, threads=1)
            section["validate_cost_1000_samples"][name] = {
                "threads": 1, "validate_seconds": round(validate_s, 3), "bare_runtime_seconds": round(bare_s, 3),
                "ratio": round(validate_s / bare_s, 3), "overhead_seconds": round(validate_s - bare_s, 3),
            }  # fmt: skip
            log.info("%s: validate 1000 samples %.2f s vs bare %.2f s", name, validate_s, bare_s)
    return section


def _latency_ratios(report: dict[str, Any]) -> dict[str, Any]:
    """fp32 p50 / int8 p50 per format and thread count (> 1: int8 is faster)."""
    cells = {(Path(r["artifact"]).suffix, r["precision"], r["threads"]): r for r in report["results"]
             if r["status"] == "measured"}  # fmt: skip
    ratios = {}
    for (suffix, precision, threads), r in cells.items():
        fp32 = cells.get((suffix, "fp32", threads))
        if precision == "int8" and fp32:
            ratios[f"{suffix[1:]}@{threads}t"] = {
                "fp32_p50_ms": fp32["latency_ms"]["p50"], "int8_p50_ms": r["latency_ms"]["p50"],
                "speedup": round(fp32["latency_ms"]["p50"] / r["latency_ms"]["p50"], 3),
            }  # fmt: skip
    return ratios


def pi_agreement() -> dict[str, Any]:
    """Every zoo artifact on the Pi's software stack against the x86 CPU (``validate --targets cpu,pi``): the
    main metric on each and their agreement per output. Reuses ``runs/demo/<recipe>`` (``make demo``) when there,
    else runs the recipe."""
    from edgekit.common.metrics import agreement_figure
    from edgekit.errors import BudgetExceededError
    from edgekit.pipeline import run
    from edgekit.runtime.pi import pi_stack, unavailable_reason
    from edgekit.stages.validate import validate

    if why := unavailable_reason():
        return {"unavailable": why}
    stack, section = pi_stack(), {}
    section["stack"] = {"describe": stack.describe(), "checksum": stack.checksum, "emulated": stack.emulated}
    for recipe in ("mobilenet_digits", "lstm_sunspots", "autoencoder_breast_cancer", "autoencoder_sensor"):
        run_dir = REPO / "runs" / "demo" / recipe
        if not (run_dir / "convert" / "manifest.json").is_file():
            run_dir = REPO / "runs" / "bench" / recipe
            run(REPO / "models" / f"{recipe}.yaml", out=run_dir)
        try:
            report = validate([run_dir], targets=["cpu", "pi"], threads=[1], out=Path("/tmp") / f"edgekit-pi-{recipe}")
        except BudgetExceededError as exc:  # the figures are what this section wants
            report = exc.report
        rows = {}
        for cell in report["results"]:
            if cell["target_requested"] != "pi" or cell["format"] != "tflite":
                continue
            cpu = next(c for c in report["results"] if c["path"] == cell["path"] and c["target_requested"] == "cpu")
            versus = {
                name: {"figure": agreement_figure(a)[0], "value": round(agreement_figure(a)[1], 6),
                       "max_abs_error": a["max_abs_error"]}
                for name, a in (cell.get("agreement_with_cpu") or {}).items()
            }  # fmt: skip
            rows[Path(cell["artifact"]).name] = {"status": cell["status"], "metrics_pi": cell["metrics"],
                                                 "metrics_cpu": cpu["metrics"], "pi_vs_cpu": versus}  # fmt: skip
        section[recipe] = rows
    return section


def targets_section() -> dict[str, Any]:
    """Targets on this machine: availability, the Edge TPU pre-flight against Coral's compiled twins, the GPU
    pre-flight, and the planned activation arena against LiteRT's real one."""
    from edgekit.formats.tflite import EDGETPU_CUSTOM_OP, read_tflite
    from edgekit.preflight.edgetpu import edgetpu_preflight
    from edgekit.preflight.gpu import gpu_preflight
    from edgekit.preflight.memory import arena_peak, measured_arena_span
    from edgekit.runtime import targets

    pairs = {}
    for name in [*CPU_MODELS, "posenet_mobilenet_v1_075_353_481_16_quant_decoder"]:
        twin = CORAL / f"{name}_edgetpu.tflite"
        if not twin.is_file():
            continue
        start = time.perf_counter()
        predicted = edgetpu_preflight(read_tflite(CORAL / f"{name}.tflite"))
        seconds = time.perf_counter() - start
        left = [op.name for op in read_tflite(twin).subgraphs[0].ops if op.name != f"CUSTOM:{EDGETPU_CUSTOM_OP}"]
        pairs[name] = {
            "compiler_cpu_ops": len(left), "predicted_cpu_ops": predicted["ops_cpu"],
            "same_ops_in_order": predicted["cpu_ops"] == left, "predicted_mapped": predicted["ops_mapped"],
            "param_bytes_on_chip": predicted["param_bytes_on_chip"], "preflight_ms": round(seconds * 1e3, 2),
        }  # fmt: skip
    memory, gpu = {}, {}
    for name in CPU_MODELS:
        path = CORAL / f"{name}.tflite"
        planned, real = arena_peak(read_tflite(path).subgraphs[0]), measured_arena_span(path)
        memory[name] = {"planned_activation_bytes": planned, "litert_arena_bytes": real,
                        "ratio": round(real / planned, 4)}  # fmt: skip
        pre = gpu_preflight(read_tflite(path))
        gpu[name] = {"preflight_target": pre["target"], "unsupported": [u["op"] for u in pre["unsupported_ops"]]}
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU or Edge TPU lent to this session",
        "availability": {
            "gpu_litert": targets.litert_gpu().describe(),
            "gpu_onnxruntime": targets.onnxruntime_gpu().describe(),
            "edgetpu_runtime": targets.edgetpu_runtime().describe(),
            "edgetpu_compiler": targets.edgetpu_compiler().describe(),
        },
        "edgetpu_preflight_vs_compiler": pairs,
        "pi_vs_x86": pi_agreement(),
        "activation_arena_vs_litert": memory,
        "gpu_preflight": gpu,
        "gpu_measured": "not measured: no GPU on this machine (device_tests/ hold the GPU measurements to run)",
    }


def streaming_section() -> dict[str, Any]:
    """Issue 29: a stacked-LSTM forecaster (24-step windows) converted windowed and with --streaming, fp32 and
    int8 TFLite: latency per window against latency per step (one thread, one run, side by side), and each
    streaming file's error over its held-out stream (stepped twice, state carried) with its drift."""
    import tempfile

    import numpy as np

    from edgekit.stages.convert import convert
    from tests import keras_models

    folder = Path(tempfile.mkdtemp(prefix="edgekit-bench-streaming-"))
    path, x = keras_models.stacked_lstm(folder / "forecaster.keras")
    np.save(folder / "windows.npy", x)
    tokens = "tflite:fp32,tflite:int8"
    windowed = convert(path, folder / "windowed", to=tokens, calib=str(folder / "windows.npy"))
    streaming = convert(path, folder / "streaming", to=tokens, calib=str(folder / "windows.npy"), streaming=True)
    figures: dict[str, Any] = {"model": "LSTM(24) -> LSTM(12) -> Dense(1), 24-step windows", "threads": 1}
    for window_art, step_art in zip(windowed["artifacts"], streaming["artifacts"], strict=True):
        per_window = benchmark(folder / "windowed" / window_art["path"], threads=1, runs=300)["latency_ms"]["p50"]
        per_step = benchmark(folder / "streaming" / step_art["path"], threads=1, runs=300)["latency_ms"]["p50"]
        figures[step_art["precision"]] = {
            "per_window_p50_ms": per_window, "per_step_p50_ms": per_step,
            "window_over_step": round(per_window / per_step, 2),
            "size_bytes": {"windowed": window_art["size_bytes"], "streaming": step_art["size_bytes"]},
            "stream": {k: step_art["stream"][k] for k in ("steps", "max_abs_error", "mean_error_over_spread", "drift",
                                                            "drift_last_vs_first_tenth")},
            "verdict": step_art["verdict"],
        }  # fmt: skip
    figures["sensor_detector"] = sensor_streaming(folder / "sensor")
    return figures


def sensor_streaming(folder: Path) -> dict[str, Any]:
    """The sensor anomaly recipe run (windowed and streaming fp32 TFLite), both on the recorded stream
    (``examples/data/sensor_stream.csv``): each row's verdict from the streaming file, stepped with its state
    carried, against the windowed file's on the row's last 64 rows (each at its own threshold); latency per
    step against per window (one thread, one run, side by side)."""
    import numpy as np

    from edgekit.pipeline import run
    from edgekit.runtime import load
    from edgekit.runtime.streams import RollingScore

    run(REPO / "models" / "autoencoder_sensor.yaml", out=folder)
    task = json.loads((folder / "manifest.json").read_text())["task"]
    scale = task["input_standardization"]
    rows = np.loadtxt(REPO / "examples" / "data" / "sensor_stream.csv", delimiter=",", skiprows=1)[:, 2:]
    z = ((rows - np.asarray(scale["mean"])) / np.asarray(scale["std"])).astype(np.float32)
    files = {}
    for name, sub in (("windowed", "convert"), ("streaming", "convert_streaming")):
        record = json.loads((folder / sub / "manifest.json").read_text())
        art = next(a for a in record["artifacts"] if a["precision_token"] == "tflite:fp32")
        files[name] = (folder / sub / art["path"], art["threshold"], record["conversion"].get("streaming"))
    steps = files["streaming"][2]["window_reduce"]["steps"]
    windows = np.stack([z[t - steps + 1 : t + 1] for t in range(steps - 1, len(z))])
    windowed = load(files["windowed"][0]).run(windows)[0].ravel()
    runner, rolling = load(files["streaming"][0]), RollingScore(files["streaming"][2]["window_reduce"])
    streamed = np.array([rolling.push(runner.step(row)[0]) for row in z])[steps - 1 :]
    flags = (windowed > files["windowed"][1], streamed > files["streaming"][1])
    per_window = benchmark(files["windowed"][0], threads=1, runs=300)["latency_ms"]["p50"]
    per_step = benchmark(files["streaming"][0], threads=1, runs=300)["latency_ms"]["p50"]
    return {
        "recipe": "models/autoencoder_sensor.yaml (causal LSTM autoencoder, 64-step windows, smoothed_max score)",
        "stream": "examples/data/sensor_stream.csv", "rows_scored": len(windowed),
        "decision_agreement": round(float((flags[0] == flags[1]).mean()), 4),
        "flagged": {"windowed": round(float(flags[0].mean()), 4), "streaming": round(float(flags[1].mean()), 4)},
        "per_window_p50_ms": per_window, "per_step_p50_ms": per_step,
        "window_over_step": round(per_window / per_step, 2),
    }  # fmt: skip


SECTIONS = {
    "targets": targets_section,
    "runtime": runtime_section,
    "convert": convert_section,
    "train": train_section,
    "optimize": optimize_section,
    "coverage": coverage_section,
    "user_models": user_models_section,
    "validate": validate_section,
    "quantization": quantization_section,
    "streaming": streaming_section,
    "onnx_int8": onnx_int8_section,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    previous: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    results = previous if args.only else {k: v for k, v in previous.items() if k == "fuzz"}  # fuzz: `make fuzz`
    results["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_features": cpu_features(),
        "packages": {
            k: v.get("version") for lane in package_versions().values() for k, v in lane.items() if v["available"]
        },
    }
    for name in args.only or SECTIONS:
        results[name] = SECTIONS[name]()
        results[name]["measured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, results)
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`edgekit train` / `edgekit run` on the shipped recipes and data: quality bars, run directory, chaining."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.inspection import inspect_model
from edgekit.pipeline import run
from edgekit.recipes import load_recipe
from edgekit.stages.convert import convert
from edgekit.stages.train import train
from edgekit.stages.validate import validate
from tests.helpers import REPO, run_cli

MODELS = REPO / "models"


def test_every_shipped_recipe_validates():
    names = sorted(p.stem for p in MODELS.glob("*.yaml"))
    assert names == [
        "autoencoder_breast_cancer", "autoencoder_sensor", "lstm_digits_rows", "lstm_sunspots", "mobilenet_digits",
    ]  # fmt: skip
    for name in names:
        recipe = load_recipe(MODELS / f"{name}.yaml")
        assert recipe.name == name


@pytest.mark.slow
def test_forecaster_beats_naive_by_20_percent(forecaster):
    _, manifest = forecaster
    metrics = manifest["metrics"]
    assert metrics["mae"] <= 0.8 * metrics["naive_mae"], metrics
    assert manifest["data"]["split"] == "chronological" and manifest["task"]["scaler"]["fitted_on"] == "train split"


@pytest.mark.slow
def test_run_directory_continues_into_convert(forecaster):
    out, manifest = forecaster
    assert (out / "model.keras").is_file() and (out / "history_train.csv").is_file()
    assert (out / "checkpoints" / "train.keras").is_file()
    assert json.loads((out / "manifest.json").read_text())["metrics"] == manifest["metrics"]
    assert manifest["precision"]["policy"] in ("float32", "mixed_bfloat16", "mixed_float16")
    converted = convert(out, out / "convert", to="tflite:fp32,tflite:int8", calib=out / "calib.npy")
    arts = {a["precision_token"]: a for a in converted["artifacts"]}
    ops = inspect_model(out / "convert" / arts["tflite:int8"]["path"])["op_histogram"]
    assert ops.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1 and "WHILE" not in ops
    assert arts["tflite:fp32"]["parity"]["within_tolerance"]
    assert converted["task"]["type"] == "forecaster"  # the scaler travels with the artifacts
    # validate on the raw CSV: every window of the whole series, scored against the naive forecast
    report = validate([out / "convert"], data=MODELS / "sunspots.csv", out=out / "validate_csv")
    rows = len((MODELS / "sunspots.csv").read_text().strip().splitlines()) - 1
    assert report["data"]["samples"] == rows - 16 and report["outputs"][next(iter(report["outputs"]))]["kind"] == (
        "forecaster"
    )
    for cell in report["results"]:
        metrics = next(iter(cell["metrics"].values()))
        assert metrics["mae_vs_naive"] < 0.9, cell  # the whole series, training years included


@pytest.mark.slow
def test_breast_cancer_detector_auc_and_run_chain(tmp_path):
    manifests = run(MODELS / "autoencoder_breast_cancer.yaml", out=tmp_path / "ae")
    metrics = manifests["train"]["metrics"]
    assert metrics["roc_auc"] >= 0.90, metrics
    assert {"precision", "recall", "f1"} <= set(metrics)
    threshold = manifests["train"]["task"]["threshold"]
    assert threshold > 0 and manifests["convert"]["task"]["threshold"] == threshold
    arts = {a["precision_token"]: a for a in manifests["convert"]["artifacts"]}
    assert arts["tflite:fp32"]["parity"]["within_tolerance"], arts["tflite:fp32"]["parity"]
    # run ends with validate on the held-out test split, scored as training scored it, gated by the recipe
    validated = manifests["validate"]
    ref = validated["reference"]["metrics"]["score"]
    # train scored the model in its training precision (mixed_bfloat16 where the CPU has bf16), validate the
    # saved float32 model: equal up to bf16 rounding of the scores
    assert ref["roc_auc"] == pytest.approx(metrics["roc_auc"], abs=0.005) and validated["data"]["samples"] == 301
    assert validated["budgets"] == {"max_accuracy_drop": 0.02, "min_agreement": 0.95} and validated["threads"] == [1, 2]
    for cell in validated["results"]:
        roc, agreed = cell["metrics"]["score"]["roc_auc"], cell["agreement"]["score"]["decision_agreement"]
        if cell["precision"] == "fp32":
            assert roc == pytest.approx(ref["roc_auc"], abs=1e-4) and agreed == 1.0
        # int8 too: the standardization runs before the model, so every feature gets the same int8 resolution
        assert roc >= ref["roc_auc"] - 0.02 and agreed >= 0.95, cell
    assert validated["budgets_broken"] == []
    assert (tmp_path / "ae" / "validate" / "report.html").stat().st_size > 10_000
    _standardized_outside_and_shipped_to_coral_in_int8(tmp_path / "ae", tmp_path / "coral")
    # tflite:mixed of the run: the recipe's budget, the test split, each candidate at its own threshold
    mixed = convert(tmp_path / "ae", tmp_path / "mixed", to="tflite:mixed", calib=tmp_path / "ae" / "calib.npy")
    entry = mixed["artifacts"][0]
    assert entry["budget"] == {"max_accuracy_drop": 0.02, "min_agreement": 0.95} and entry["float_layers"] == []
    assert entry["search"]["evaluated_on"].endswith("test.npz") and entry["search"]["threshold"] > 0
    assert entry["search"]["figures"]["score:decision_agreement"] >= 0.95, entry["search"]["figures"]


def _standardized_outside_and_shipped_to_coral_in_int8(run_dir: Path, out: Path) -> None:
    """The run's arrays are what the model takes (standardized); the Coral bundle ships the int8 file, its ops all
    on the Edge TPU by the pre-flight, and standardizes raw CSV rows itself before quantizing them."""
    from edgekit.stages.bundle import bundle, predict

    task = json.loads((run_dir / "manifest.json").read_text())["task"]
    mean, std = np.array(task["input_standardization"]["mean"]), np.array(task["input_standardization"]["std"])
    calib, test = np.load(run_dir / "calib.npy"), np.load(run_dir / "test.npz")
    assert mean.shape == (30,) and np.abs(calib.mean(axis=0)).max() < 1e-4
    assert np.allclose(calib.std(axis=0), 1, atol=1e-3)
    assert mean.max() > 100 * mean.min() > 0  # raw features span orders of magnitude: why int8 needs this
    shipped = bundle(run_dir, "coral", out=out)
    assert shipped["model"]["precision"] == "int8" and shipped["inputs"][0]["dtype"] == "int8"
    preflight = shipped["edgetpu_preflight"]
    assert preflight["ops_cpu"] == 0 and preflight["blockers"] == [] and preflight["ops_mapped"] >= 8, preflight
    assert shipped["inputs"][0]["preprocessing"]["mean"] == pytest.approx(list(mean))
    raw = test["x"][:40] * std + mean  # what a user's app reads from the sensor / the lab
    np.savetxt(out / "rows.csv", raw, delimiter=",")
    predicted = predict(out, [out / "rows.csv"])
    int8 = edgekit.load(out / shipped["model"]["file"]).run(test["x"][:40])[0].ravel()
    assert [p["score"] for p in predicted] == pytest.approx(int8.tolist(), abs=1e-6)
    assert [p["anomaly"] for p in predicted] == [bool(s > shipped["postprocessing"]["threshold"]) for s in int8]


@pytest.mark.slow
def test_sensor_lstm_detector_finds_injected_anomalies_and_converts(sensor_run):
    out, manifests = sensor_run
    assert manifests["train"]["metrics"]["roc_auc"] >= 0.90, manifests["train"]["metrics"]
    arts = {a["precision_token"]: a for a in manifests["convert"]["artifacts"]}
    assert manifests["convert"]["failed"] == [] and manifests["convert"]["conversion"]["route"].startswith("tf_keras")
    # The scaler's statistics are constants captured by tf_keras; they must be frozen into the ONNX graph.
    assert arts["onnx:fp32"]["parity"]["within_tolerance"] and arts["tflite:fp32"]["parity"]["within_tolerance"]
    ops = inspect_model(out / "convert" / arts["tflite:int8"]["path"])["op_histogram"]
    assert ops.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2 and "WHILE" not in ops, ops
    # int8 holds the recipe's budgets (ROC-AUC within 0.02, decision agreement >= 0.95 at its own threshold)
    assert manifests["validate"]["budgets_broken"] == [], manifests["validate"]["budgets_broken"]


@pytest.mark.slow
def test_mixed_precision_trains_and_saves_float32(tmp_path):
    from edgekit.recipes import recipe_from_dict

    recipe = recipe_from_dict({
        "name": "mixed", "family": "autoencoder", "data": {"source": "sklearn:breast_cancer", "normal_label": 1},
        "model": {"units": [16], "latent": 4}, "train": {"epochs": 2, "precision": "mixed_bfloat16"},
    })  # fmt: skip
    manifest = train(recipe, out=tmp_path / "mixed")
    assert manifest["precision"]["policy"] == "mixed_bfloat16"
    import keras

    model = keras.models.load_model(tmp_path / "mixed" / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model._flatten_layers(include_self=False)} == {"float32"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multiworker_two_processes(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "name: tiny\nfamily: autoencoder\ndata: {source: sklearn:breast_cancer, normal_label: 1}\n"
        "model: {units: [8], latent: 4}\ntrain: {epochs: 1, batch_size: 16}\n"
    )
    ports = [_free_port(), _free_port()]
    procs = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        cmd = [sys.executable, "-m", "edgekit", "train", str(recipe), "--strategy", "multiworker", "--json",
               "--out", str(tmp_path / "run")]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr[-2000:]
    chief = json.loads(results[0][0])
    assert chief["strategy"] == {"name": "multiworker", "replicas": 2}
    assert chief["history"][0]["epochs_run"] == 1
    assert (tmp_path / "run" / "model.keras").is_file()  # only the chief (worker 0) wrote the run directory


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe_text", "message"),
    [
        ("name: x\nfamily: forecaster\ndata: {source: s.csv, windw: 3}\n", "unknown key data.windw"),
        (
            "name: x\nfamily: forecaster\ndata: {source: s.csv}\ntrain: {epochs: ten}\n",
            "train.epochs must be an integer",
        ),
        ("name: x\nfamily: robot\ndata: {source: s.csv}\n", "family must be one of"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_recipes(tmp_path, recipe_text, message):
    (tmp_path / "r.yaml").write_text(recipe_text)
    res = run_cli("train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "out" / "model.keras").exists()


def _recipe_with(tmp_path, family: str, source: str, extra: str = "") -> str:
    path = tmp_path / f"{family}_{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(f"name: x\nfamily: {family}\ndata: {{source: {source}{extra}}}\n")
    return str(path)


@pytest.mark.slow
def test_bad_data(tmp_path):
    from PIL import Image

    one_class = tmp_path / "one_class" / "cat"
    one_class.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(one_class / "a.png")
    (tmp_path / "short.csv").write_text("v\n1\n2\n3\n")
    (tmp_path / "nan.csv").write_text("t,v\n" + "\n".join(f"{i},{'' if i == 17 else i % 7}" for i in range(40)) + "\n")
    cases = [
        (_recipe_with(tmp_path, "image_classifier", str(tmp_path / "one_class")), "at least two classes"),
        (_recipe_with(tmp_path, "forecaster", str(tmp_path / "short.csv")), "fewer than one window"),
        (_recipe_with(tmp_path, "forecaster", str(tmp_path / "nan.csv"), ", window: 4"), "NaN or missing values"),
    ]
    for recipe, message in cases:
        res = run_cli("train", recipe, "--out", str(tmp_path / "out"))
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr[-500:]


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    from PIL import Image

    from edgekit.buildlane.datasets import load_splits
    from edgekit.recipes import DataConfig

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    splits = load_splits(DataConfig(source=str(tmp_path)), "image_classifier")
    assert splits.info["skipped_unreadable"] == 1 and splits.info["labels"] == ["a", "b"]
    assert len(splits.x_train) + len(splits.x_val) + len(splits.x_test) == 40


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small"])
def test_augmentation_lives_only_in_the_training_twin(arch):
    from edgekit.models.mobilenet import build, build_base
    from edgekit.recipes import ModelConfig

    config = ModelConfig(arch=arch, alpha=0.75 if arch.endswith("small") else 0.35, input_size=32)
    model, twin = build(config, (8, 8, 1), 3, build_base(config, 1))
    names = lambda m: {type(layer).__name__ for layer in m._flatten_layers(include_self=False)}  # noqa: E731
    assert "RandomTranslation" in names(twin) and "RandomZoom" in names(twin)
    assert not {"RandomTranslation", "RandomZoom"} & names(model)
    assert {"Resizing", "Rescaling"} <= names(model)  # preprocessing is inside the exported model
    assert [w.name for w in model.weights] == [w.name for w in twin.weights]  # one set of weights


@pytest.mark.slow
def test_mobilenet_transfer_on_digits(mobilenet_run):
    run_dir, manifest = mobilenet_run
    metrics = manifest["metrics"]
    assert metrics["accuracy"] >= 0.95, metrics  # the quality bar, on digits 5-9 held out
    assert metrics["pretrain_accuracy"] >= 0.9, metrics  # the base really learned digits 0-4 first
    assert [h["stage"] for h in manifest["history"]] == ["pretrain", "head", "fine_tune"]
    converted = convert(run_dir, run_dir / "convert", to="tflite:int8,onnx:int8", calib=run_dir / "calib.npy")
    arts = {a["precision_token"]: a for a in converted["artifacts"]}
    for art in arts.values():  # onnx:int8 with full-range weights saturated on AVX2: 66 % (see converters/onnx.py)
        assert art["parity"]["top1_agreement"] >= 0.95, art
    ops = inspect_model(run_dir / "convert" / arts["tflite:int8"]["path"])["op_histogram"]
    assert "RESIZE_BILINEAR" in ops and not any("RANDOM" in op for op in ops), ops
    # validate finds the run's test split and Keras model through the convert manifest
    report = validate([run_dir / "convert"], out=run_dir / "validate")
    keras_accuracy = report["reference"]["metrics"]["head"]["accuracy"]
    assert keras_accuracy == pytest.approx(metrics["accuracy"], abs=0.01) and report["data"]["samples"] == 224
    for cell in report["results"]:
        assert cell["metrics"]["head"]["accuracy"] >= keras_accuracy - 0.02, cell

"""``tflite:mixed`` on a model int8 breaks: a classifier on the raw breast-cancer features (0.001 to 4000) whose
standardization sits inside the graph, so int8 quantizes the raw input with one scale for every feature.

Every figure the search claims is measured again here, with LiteRT, on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgekit
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def raw_feature_classifier(tmp_path_factory) -> Path:
    """A 2-class classifier with a Normalization layer named ``scale`` before its two Dense layers (seconds)."""
    import keras
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    folder = tmp_path_factory.mktemp("mixed")
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype(np.float32), data.target, test_size=0.3, random_state=0, stratify=data.target
    )
    keras.utils.set_random_seed(0)
    scale = keras.layers.Normalization(name="scale")
    scale.adapt(x_train)
    inputs = keras.Input((30,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(scale(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probs")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=30, batch_size=16, verbose=0)
    model.save(folder / "clf.keras")
    np.save(folder / "calib.npy", x_train)
    np.savez(folder / "val.npz", x=x_test, y=y_test, reference=model.predict(x_test, verbose=0))
    return folder


def _agreement(path: Path, val: np.lib.npyio.NpzFile) -> float:
    return float(np.mean(edgekit.load(path).run(val["x"])[0].argmax(-1) == val["reference"].argmax(-1)))


def test_mixed_keeps_only_the_layer_that_breaks_int8_float(raw_feature_classifier, tmp_path):
    folder = raw_feature_classifier
    out = tmp_path / "out"
    tokens = "tflite:int8,tflite:mixed,onnx:int8,onnx:mixed"
    args = ("convert", str(folder / "clf.keras"), "--calib", str(folder / "calib.npy"), "--data",
            str(folder / "val.npz"), "--to", tokens, "--out", str(out))  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    int8, mixed, onnx_int8, onnx_mixed = manifest["artifacts"]
    val = np.load(folder / "val.npz")
    # full int8 is broken, and the diagnosis names the scaler: its SUB and MUL are the two worst layers
    assert int8["verdict"] == "out_of_tolerance" and _agreement(out / int8["path"], val) < 0.9
    assert {e["keras_layer"] for e in int8["worst_layers"][:2]} == {"scale"}, int8["worst_layers"]
    # mixed: the scaler alone stays float, and it holds the budget (agreement >= 0.99 by default) when measured here
    assert mixed["precision"] == "mixed" and mixed["float_layers"] == ["scale"], mixed["search"]["candidates"]
    assert mixed["budget"] == {"min_agreement": 0.99} and mixed["search"]["evaluated_on"] == str(folder / "val.npz")
    measured = _agreement(out / mixed["path"], val)
    assert measured >= 0.99 and measured == pytest.approx(mixed["search"]["figures"]["probs:top1_agreement"])
    ops = edgekit.inspect_model(out / mixed["path"])["op_histogram"]
    assert ops.get("FULLY_CONNECTED") == 2 and not any(op.startswith("CUSTOM") for op in ops), ops
    # the scaler quantized alone (everything else float) reproduces the whole loss; the other layers alone do not
    alone = {a["layer"]: a for a in mixed["search"]["quantized_alone"]}
    assert not alone["scale"]["within_budget"] and all(a["within_budget"] for k, a in alone.items() if k != "scale")
    loss = mixed["search"]["loss"]
    assert loss["kind"] == "concentrated" and loss["layers"][0] == "scale", loss
    first = mixed["search"]["candidates"][0]
    assert first["float_layers"] == [] and first["figures"]["probs:top1_agreement"] == pytest.approx(
        _agreement(out / int8["path"], val), abs=0.02
    )  # candidate 0 is full int8 (float I/O)
    assert mixed["search"]["latency_vs_full_int8"] > 0 and mixed["search"]["size_vs_full_int8"] >= 1.0
    # the budget stated as what it guarantees: k of n disagreed, and the disagreement rate ruled out at 95 %
    bound = mixed["search"]["agreement_bounds"]["probs:top1_agreement"]
    n, k = bound["samples"], bound["disagreements"]
    assert n == len(val["y"]) and k == round((1 - measured) * n) and 0 < bound["disagreement_95_upper"] < 0.2
    assert bound["says"].startswith("at most ") and f"{k} of {n} did here" in bound["says"]
    # ONNX: the diagnosis (ONNX Runtime's qdq_loss_debug) names the same layer, and onnx:mixed keeps it float
    assert onnx_int8["verdict"] == "out_of_tolerance" and onnx_int8["worst_layers"][0]["keras_layer"] == "scale"
    assert onnx_mixed["float_layers"] == ["scale"] and _agreement(out / onnx_mixed["path"], val) >= 0.99
    assert min(onnx_mixed["search"]["layer_errors"], key=lambda e: e["snr_db"])["keras_layer"] == "scale"

    # validate at the same budget: int8 breaks it and the report shows its worst layers; mixed keeps it
    validated = run_cli("validate", str(out), "--data", str(folder / "val.npz"), "--min-agreement", "0.99")
    assert validated.returncode == 4, validated.stderr
    report = json.loads((out / "validate" / "report.json").read_text())
    broken = {b["artifact"] for b in report["budgets_broken"]}
    assert broken == {int8["path"], onnx_int8["path"]}, report["budgets_broken"]
    assert report["layer_errors"][int8["path"]]["worst"][0]["keras_layer"] == "scale"
    page = (out / "validate" / "report.html").read_text()
    assert "Per-layer quantization error" in page and 'id="layer_errors"' in page
    cells = [(r["precision"], r["latency_ms"]["p50"]) for r in report["results"]]
    assert sorted(p for p, _ in cells) == ["int8", "int8", "mixed", "mixed"] and all(ms > 0 for _, ms in cells)

    # an impossible budget: the bounded search ends outside it, names the closest candidate, exits 3, ships nothing
    failed = run_cli(*args, "--max-accuracy-drop", "-0.5")
    assert failed.returncode == 3 and "tflite:mixed: no candidate within the budget" in failed.stderr, failed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["precision"] for a in manifest["artifacts"]] == ["int8", "int8"]
    assert all(a["reused"] for a in manifest["artifacts"])
    assert not (out / mixed["path"]).exists() and not (out / onnx_mixed["path"]).exists()
    search = manifest["failed"][0]["search"]
    assert not search["within_budget"] and 1 < len(search["candidates"]) <= 12

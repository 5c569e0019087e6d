"""The app code of Android and iOS bundles (issue 28): Kotlin compiled with Debian's ``kotlinc`` against a stub of
the Android / LiteRT Java API (``tests/bundle/android_stub``: no Android SDK can be installed here); Swift, with no
toolchain here, checked for what it feeds and reads. One bundle per kind of contract: an image classifier, a token
model with two named inputs, a stateful (fused LSTM) model, a detector, a segmenter and a pose model.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO

STUB = REPO / "tests" / "bundle" / "android_stub"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kotlinc(tmp_path_factory) -> tuple[str, Path]:
    """kotlinc and the compiled stub classes (javac)."""
    kotlinc, javac = shutil.which("kotlinc"), shutil.which("javac")
    if kotlinc is None or javac is None:
        pytest.skip("kotlinc / javac not installed (make test installs Debian's kotlin where apt-get can)")
    classes = tmp_path_factory.mktemp("stub")
    sources = [str(p) for p in STUB.rglob("*.java")]
    ran = subprocess.run([javac, "-d", str(classes), *sources], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    return kotlinc, classes


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, coral, sensor_run) -> dict[str, Path]:
    """Android and iOS bundles of eight models, by name."""
    from edgekit.stages.bundle import bundle
    from edgekit.stages.convert import convert
    from tests.keras_models import features_and_tokens, pose_head, small_lstm, ssd_quadrants, stacked_lstm

    tmp = tmp_path_factory.mktemp("apps")
    rng = np.random.default_rng(0)
    sources: dict[str, tuple[Path, dict]] = {
        "image": (coral / "mobilenet_v2_1.0_224_quant.tflite", {"labels": coral / "imagenet_labels.txt"}),
        "segmenter": (coral / "deeplabv3_mnv2_dm05_pascal_quant.tflite", {}),
        "detector": (ssd_quadrants(tmp), {"mean": [0.0] * 3, "std": [1.0] * 3}),
    }
    features, tokens = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 50, (64, 8)).astype(np.int32)
    np.savez(tmp / "two.npz", features=features, tokens=tokens)
    convert(features_and_tokens(tmp / "two.keras"), tmp / "two", to="tflite:int8", calib=str(tmp / "two.npz"))
    sources["tokens"] = (tmp / "two", {})
    np.save(tmp / "windows.npy", rng.normal(size=(64, 12, 1)).astype(np.float32))
    convert(small_lstm(tmp / "lstm.keras"), tmp / "lstm", to="tflite:fp32", calib=str(tmp / "windows.npy"))
    sources["stateful"] = (tmp / "lstm", {})
    path, x = stacked_lstm(tmp / "stacked.keras")
    np.save(tmp / "stacked.npy", x)
    convert(path, tmp / "streaming", to="tflite:int8", calib=str(tmp / "stacked.npy"), streaming=True)
    sources["streaming"] = (tmp / "streaming", {})
    path, x = pose_head(tmp / "pose.keras")
    np.save(tmp / "pose.npy", x)
    convert(path, tmp / "pose", to="tflite:fp32", calib=str(tmp / "pose.npy"), output_kind="keypoints")
    sources["pose"] = (tmp / "pose", {})
    sources["scorer"] = (sensor_run[0], {"streaming": True})  # the sensor's streaming anomaly scorer
    made = {}
    for name, (source, options) in sources.items():
        for platform in ("android", "ios"):
            made[f"{name}/{platform}"] = tmp / f"{name}_{platform}"
            bundle(source, platform, out=made[f"{name}/{platform}"], **options)
    return made


KINDS = ("image", "tokens", "stateful", "streaming", "scorer", "detector", "segmenter", "pose")


@pytest.mark.parametrize("kind", KINDS)
def test_the_kotlin_compiles_and_feeds_every_input_by_its_dtype(kind, bundles, kotlinc, tmp_path):
    folder = bundles[f"{kind}/android"]
    source = folder / "EdgekitModel.kt"
    ran = subprocess.run([kotlinc[0], "-cp", str(kotlinc[1]), str(source), "-d", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    errors = [line for line in ran.stderr.splitlines() if ": error:" in line]
    assert ran.returncode == 0 and not errors, ran.stderr[-2000:]
    kotlin = source.read_text()
    manifest = json.loads((folder / "edgekit.json").read_text())
    for item in manifest["inputs"]:
        assert f'interpreter.getInputIndex("{item["name"]}")' in kotlin  # every input is fed
        if item["dtype"] == "int32":
            assert "IntArray" in kotlin and "buf.putInt(v)" in kotlin
    for item in manifest["outputs"]:
        assert f'interpreter.getOutputIndex("{item["name"]}")' in kotlin  # every output is read
    assert ("interpreter.resetVariableTensors()" in kotlin) == manifest["state"]["reset_before_each_call"]
    decoders = {"classifier": "fun classify(", "detector": "fun detect(", "segmenter": "fun segment(",
                "pose": "fun keypoints(", "anomaly_scorer": "fun isAnomaly("}  # fmt: skip
    decoder = decoders.get(manifest["task"], "fun run(")
    assert decoder in kotlin
    if kind in ("streaming", "scorer"):  # the state lives in the class between calls and is fed back at each step
        assert "fun step(x: FloatArray)" in kotlin and "fun reset()" in kotlin
        assert re.search(r'state\["(\w+)_h"\] = out\.getValue\("\1_h_next"\)', kotlin)
    if kind == "scorer":  # a row's verdict: the window score of the last 64 rows' errors, kept in the class too
        assert "fun scoreStep(x: FloatArray): Float?" in kotlin and "if (errors.size > 64) errors.removeAt(0)" in kotlin
        assert "fun reset() { state.clear(); errors.clear() }" in kotlin and "fun score(" not in kotlin


@pytest.mark.parametrize("kind", KINDS)
def test_the_swift_feeds_every_input_by_its_dtype(kind, bundles):
    folder = bundles[f"{kind}/ios"]
    swift = (folder / "EdgekitModel.swift").read_text()
    manifest = json.loads((folder / "edgekit.json").read_text())
    for item in manifest["inputs"]:
        assert f'index(of: "{item["name"]}", count: interpreter.inputTensorCount)' in swift
        if item["dtype"] == "int32":
            assert re.search(r"\w+: \[Int32\]", swift)
    for item in manifest["outputs"]:
        assert f'outputs["{item["name"]}"] =' in swift
    assert swift.count("{") == swift.count("}") and swift.count("(") == swift.count(")")
    assert ("makeInterpreter()\n" in swift.split("func run(")[1]) == manifest["state"]["reset_before_each_call"]
    if kind in ("streaming", "scorer"):
        assert "func step(x: [Float])" in swift and re.search(r'state\["(\w+)_h"\] = out\["\1_h_next"\]!', swift)
    if kind == "scorer":
        assert "func scoreStep(x: [Float]) throws -> Float?" in swift and "errors.removeFirst()" in swift

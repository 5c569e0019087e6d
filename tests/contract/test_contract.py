"""The model's contract end to end (issue 28): read at convert, used by validate, bundle and predict.

Real Keras models trained in seconds on scikit-learn's digits, the real converter, LiteRT and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_clean_failure, by_token, run_cli
from tests.keras_models import digit_cnn, lossy_int8_classifier

pytestmark = pytest.mark.slow


def _keras_top1(model_path: Path, x: np.ndarray) -> np.ndarray:
    import keras

    return keras.models.load_model(model_path).predict(x, verbose=0).argmax(-1)


def _pngs(folder: Path, x: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> list[Path]:
    """Images as PNG files (in class sub-folders named ``names[y]`` when given)."""
    from PIL import Image

    paths = []
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        where = folder / names[label] if names else folder
        where.mkdir(parents=True, exist_ok=True)
        paths.append(where / f"{i:03d}.png")
        Image.fromarray(image.astype(np.uint8)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> dict:
    """A classifier trained on pixels / 255 with no scaling layer, converted from a 0..1 .npy calibration."""
    from edgekit.stages.convert import convert

    tmp = tmp_path_factory.mktemp("scaled")
    path, x, y = digit_cnn(tmp / "scaled.keras")
    np.save(tmp / "calib.npy", (x[::3] / 255.0).astype(np.float32))
    record = convert(path, tmp / "run", to="tflite:fp32,tflite:int8", calib=str(tmp / "calib.npy"))
    held = slice(1, None, 12)  # images the calibration sample did not hold
    return {"tmp": tmp, "path": path, "x": x[held], "y": y[held], "record": record, "run": tmp / "run"}


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory) -> dict:
    """The Keras tutorial's classifier (augmentation, Rescaling(1/255), logits) calibrated on 0..1 data."""
    from edgekit.stages.convert import convert

    tmp = tmp_path_factory.mktemp("tutorial")
    path, x, y = digit_cnn(tmp / "tutorial.keras", tutorial=True)
    np.save(tmp / "calib01.npy", (x[::3] / 255.0).astype(np.float32))
    record = convert(path, tmp / "run", to="tflite:fp32,tflite:int8", calib=str(tmp / "calib01.npy"))
    return {"tmp": tmp, "path": path, "x": x[1::12], "y": y[1::12], "record": record, "run": tmp / "run"}


def test_the_range_is_read_from_the_calibration_data_and_the_bundle_scales_pixels(scaled, tmp_path):
    contract = scaled["record"]["contract"]
    image = contract["inputs"][0]
    assert image["kind"] == "image" and image["range"] == [0.0, 1.0], image
    assert "calibration data" in image["range_source"]
    assert contract["outputs"][0]["kind"] == "probabilities"

    res = run_cli("bundle", str(scaled["run"]), "--platform", "rpi", "--out", str(tmp_path / "b"), "--json")
    assert res.returncode == 0, res.stderr
    pre = json.loads(res.stdout)["inputs"][0]["preprocessing"]
    assert pre["mean"] == [0.0] * 3 and pre["std"] == [255.0] * 3, pre  # no --mean / --std given
    assert "no labels" in res.stderr  # a classifier without labels says why it has none

    images = _pngs(tmp_path / "images", scaled["x"], scaled["y"])
    res = run_cli("predict", str(tmp_path / "b"), *map(str, images), "--json")
    assert res.returncode == 0, res.stderr
    got = np.array([r["top"][0]["index"] for r in json.loads(res.stdout)])
    want = _keras_top1(scaled["path"], scaled["x"] / 255.0)
    assert np.mean(got == want) >= 0.9, (got, want)  # the int8 file, on pixels / 255


def test_real_photos_get_the_keras_top1_through_the_scaled_contract(scaled, coral):
    from edgekit.stages.bundle import app, predict
    from edgekit.stages.bundle.loader import derived_manifest

    fp32 = scaled["run"] / by_token(scaled["record"])["tflite:fp32"]["path"]
    photos = sorted((coral / "images").glob("*.bmp"))
    got = [r["top"][0]["index"] for r in predict(fp32, photos)]  # the contract beside the file scales them
    item = derived_manifest(fp32, None)[0]["inputs"][0]
    assert item["preprocessing"]["std"] == [255.0] * 3
    raw = {**item, "preprocessing": {**item["preprocessing"], "mean": [0.0] * 3, "std": [1.0] * 3}}
    pixels = np.concatenate([app.read_input(p, raw) for p in photos])  # the same resize, as 0..255 pixels
    assert pixels.max() > 100
    assert got == _keras_top1(scaled["path"], pixels / 255.0).tolist()


def test_the_tutorial_layout_is_warned_about_and_its_logits_are_a_classifiers(tutorial, tmp_path):
    record = tutorial["record"]
    warned = [w for w in record["warnings"] if "spans 0..1" in w]
    assert len(warned) == 1 and "rescaling" in warned[0] and "behind random_flip" in warned[0], record["warnings"]
    image, logits = record["contract"]["inputs"][0], record["contract"]["outputs"][0]
    assert image["range"] == [0.0, 255.0] and logits["kind"] == "logits", record["contract"]
    assert record["conversion"]["task"] == "classifier"

    np.savez(tmp_path / "test.npz", x=tutorial["x"], y=tutorial["y"])
    fp32 = tutorial["run"] / by_token(record)["tflite:fp32"]["path"]
    res = run_cli("validate", str(tutorial["run"]), "--data", str(tmp_path / "test.npz"),
                  "--max-accuracy-drop", "0.05", "--json")  # fmt: skip
    # the int8 file calibrated on 0..1 data (the warning above) breaks the accuracy budget; fp32 keeps it
    assert res.returncode == 4 and "tutorial_int8.tflite" in res.stderr and "accuracy_drop" in res.stderr
    res = run_cli("validate", str(fp32), "--data", str(tmp_path / "test.npz"), "--max-accuracy-drop", "0.05",
                  "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    metrics = report["results"][0]["metrics"][logits["name"]]
    keras_acc = float(np.mean(_keras_top1(tutorial["path"], tutorial["x"]) == tutorial["y"]))
    assert "accuracy" in metrics, metrics  # scored as a classifier, not by cosine
    assert report["reference"]["metrics"][logits["name"]]["accuracy"] == pytest.approx(keras_acc, abs=1e-6)

    images = _pngs(tmp_path / "images", tutorial["x"][:4], tutorial["y"][:4])
    res = run_cli("predict", str(fp32), *map(str, images), "--top-k", "4", "--json")
    assert res.returncode == 0, res.stderr
    for result in json.loads(res.stdout):
        assert sum(t["score"] for t in result["top"]) == pytest.approx(1.0, abs=1e-4)  # soft-maxed logits


def test_validate_maps_class_folders_to_labels_by_name(scaled, tmp_path):
    from edgekit.stages.convert import convert

    names = ["zero", "one", "two", "three"]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    run = tmp_path / "run"
    record = convert(scaled["path"], run, to="tflite:fp32", calib=str(scaled["tmp"] / "calib.npy"),
            labels=str(tmp_path / "labels.txt"))  # fmt: skip
    keep = scaled["y"] != 0  # the "zero" class folder is missing
    x, y = scaled["x"][keep], scaled["y"][keep]
    _pngs(tmp_path / "folder", x, y, names)
    res = run_cli("validate", str(run), "--data", str(tmp_path / "folder"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["data"]["classes_matched_by"] == "label name"
    keras_acc = float(np.mean(_keras_top1(scaled["path"], x / 255.0) == y))
    assert keras_acc > 0.8  # a model worth scoring: the sorted-position mapping would score it near 0
    output = record["contract"]["outputs"][0]
    assert output["labels"] == names and output["labels_source"].endswith("labels.txt")
    assert report["results"][0]["metrics"][output["name"]]["accuracy"] == pytest.approx(keras_acc, abs=0.05)

    (tmp_path / "folder" / "seven").mkdir()
    _pngs(tmp_path / "folder" / "seven", x[:1], y[:1])
    assert_clean_failure(run_cli("validate", str(run), "--data", str(tmp_path / "folder")), "'seven'", "labels")


def test_image_folder_calibration_without_a_scaling_layer_asks_for_the_range(scaled, tmp_path):
    _pngs(tmp_path / "calib", scaled["x"], scaled["y"])
    res = run_cli("convert", str(scaled["path"]), "--out", str(tmp_path / "run"), "--to", "tflite:int8",
                  "--calib", str(tmp_path / "calib"))  # fmt: skip
    assert_clean_failure(res, "--input-range 0,1", "no scaling layer")
    assert not (tmp_path / "run").exists()

    res = run_cli("convert", str(scaled["path"]), "--out", str(tmp_path / "run"), "--to", "tflite:int8",
                  "--calib", str(tmp_path / "calib"), "--input-range", "0,1", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["contract"]["inputs"][0]["range"] == [0.0, 1.0]
    assert record["artifacts"][0]["parity"]["top1_agreement"] >= 0.9  # calibrated on pixels / 255, as it runs


def test_contract_flags_that_contradict_the_model_are_refused(scaled, tutorial, tmp_path):
    out = str(tmp_path / "run")
    assert_clean_failure(run_cli("convert", str(scaled["path"]), "--out", out, "--to", "tflite:fp32",
                                 "--output-kind", "detection"), "detection", "only output")  # fmt: skip
    assert_clean_failure(run_cli("convert", str(tutorial["path"]), "--out", out, "--to", "tflite:fp32",
                                 "--input-range", "0,1"), "contradicts", "rescaling")  # fmt: skip
    assert_clean_failure(run_cli("convert", str(scaled["path"]), "--out", out, "--to", "tflite:fp32",
                                 "--input-range", "1,0"), "LO < HI")  # fmt: skip
    assert not Path(out).exists()


def test_an_integer_input_takes_no_range(tmp_path):
    import keras

    inputs = keras.Input((8,), dtype="int32", name="tokens")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h)).save(tmp_path / "tokens.keras")
    res = run_cli("convert", str(tmp_path / "tokens.keras"), "--out", str(tmp_path / "run"), "--to", "tflite:fp32",
                  "--input-range", "0,1")  # fmt: skip
    assert_clean_failure(res, "--input-range", "float inputs only")


def test_bundle_never_ships_a_file_out_of_tolerance(tmp_path):
    from edgekit.stages.convert import convert

    path, x, y = lossy_int8_classifier(tmp_path / "lossy.keras")
    np.save(tmp_path / "calib.npy", x)
    np.savez(tmp_path / "test.npz", x=x[:200], y=y[:200])
    record = convert(path, tmp_path / "run", to="tflite:fp32,tflite:int8", calib=str(tmp_path / "calib.npy"))
    int8 = by_token(record)["tflite:int8"]
    assert int8["verdict"] == "out_of_tolerance", int8["parity"]
    assert run_cli("validate", str(tmp_path / "run"), "--data", str(tmp_path / "test.npz")).returncode == 0

    res = run_cli("bundle", str(tmp_path / "run"), "--platform", "rpi", "--out", str(tmp_path / "b"), "--json")
    assert res.returncode == 0, res.stderr
    model = json.loads(res.stdout)["model"]
    assert model["file"].endswith("_fp32.tflite") and model["verdict"]["verdict"] == "pass", model

    only = convert(path, tmp_path / "int8_only", to="tflite:int8", calib=str(tmp_path / "calib.npy"))
    assert only["artifacts"][0]["verdict"] == "out_of_tolerance"
    res = run_cli("bundle", str(tmp_path / "int8_only"), "--platform", "rpi", "--out", str(tmp_path / "b2"))
    assert res.returncode == 4 and "closest is lossy_int8.tflite" in res.stderr, (res.returncode, res.stderr)
    assert not (tmp_path / "b2").exists()
    res = run_cli("bundle", str(tmp_path / "int8_only" / "lossy_int8.tflite"), "--platform", "android",
                  "--out", str(tmp_path / "b3"))  # fmt: skip
    assert res.returncode == 4 and "out of tolerance" in res.stderr, res.stderr
    res = run_cli("bundle", str(tmp_path / "int8_only"), "--platform", "rpi", "--out", str(tmp_path / "b4"),
                  "--allow-over-budget", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    shipped = json.loads(res.stdout)
    assert shipped["model"]["verdict"]["verdict"] == "out_of_tolerance"
    assert any("out of convert's tolerance" in w for w in shipped["warnings"])


def _code_braces(source: str) -> tuple[int, int]:
    """Opening and closing braces outside comments and strings (a Kotlin file's structure, short of compiling)."""
    import re

    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', source)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    code = re.sub(r"//[^\n]*", "", code)
    return code.count("{"), code.count("}")


def test_the_kotlin_of_a_feature_model_keeps_its_braces_out_of_comments(tmp_path):
    """The non-image Kotlin put `fun run(...)`'s opening brace after a `//` comment. kotlinc is not installed here
    (issue 28 item 5 asks for compiling; that is still open): the structure is checked instead."""
    from edgekit.stages.bundle import bundle
    from edgekit.stages.convert import convert

    path, x, _ = lossy_int8_classifier(tmp_path / "lossy.keras")
    np.save(tmp_path / "calib.npy", x)
    convert(path, tmp_path / "run", to="tflite:fp32", calib=str(tmp_path / "calib.npy"))
    bundle(tmp_path / "run", "android", out=tmp_path / "b")
    kotlin = (tmp_path / "b" / "EdgekitModel.kt").read_text()
    run_line = next(line for line in kotlin.splitlines() if "fun run(" in line)
    assert run_line.rstrip().endswith("{") and "//" not in run_line, run_line
    opening, closing = _code_braces(kotlin)
    assert opening == closing, (opening, closing)


def test_an_h5_file_keeps_its_compiled_loss(tmp_path):
    """A legacy .h5 carries its compile config in ``training_config``: from_logits=True makes the output logits."""
    import keras

    inputs = keras.Input((6,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(3, name="scores")(inputs))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "legacy.h5")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32))
    res = run_cli("convert", str(tmp_path / "legacy.h5"), "--out", str(tmp_path / "run"), "--to", "tflite:fp32",
                  "--calib", str(tmp_path / "calib.npy"), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["contract"]["outputs"][0]["kind"] == "logits", record["contract"]
    assert record["conversion"]["task"] == "classifier"

"""``edgekit validate``: task metrics on labelled data, agreement with Keras, latency per target × threads,
budgets (exit 4), the report a person reads, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from edgekit.common.metrics import roc_auc, task_metrics
from edgekit.stages.convert import convert
from edgekit.stages.validate import validate
from tests import keras_models
from tests.helpers import BUILD_LANE, REPO, run_cli

TOKENS = "tflite:fp32,tflite:int8,onnx:fp32"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small digits CNN (trained in seconds), its three artifacts, and a held-out labelled test set."""
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("validate_digits")
    data = load_digits()
    x = (data.images * (255.0 / 16.0))[..., None].astype(np.float32)
    y = data.target
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(16, 3, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="digit")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[train], y[train], epochs=15, batch_size=32, verbose=0)
    model.save(d / "digits.keras")
    np.save(d / "calib.npy", x[train][:200])
    np.savez(d / "test.npz", x=x[test], y=y[test])
    manifest = convert(d / "digits.keras", d / "convert", to=TOKENS, calib=d / "calib.npy")
    assert not manifest["failed"], manifest["failed"]
    keras_accuracy = float(np.mean(model.predict(x[test], verbose=0).argmax(-1) == y[test]))
    return d, x[test], y[test], keras_accuracy


@pytest.fixture(scope="module")
def digits_report(digits):
    d, *_ = digits
    return validate([d / "convert"], data=d / "test.npz", threads=[1, 2], out=d / "report")


@pytest.mark.slow
def test_every_artifact_scored_against_keras_on_labelled_data(digits, digits_report):
    d, _, y, keras_accuracy = digits
    r = digits_report
    assert r["schema_version"] == "1.0.0" and r["data"]["samples"] == len(y) == 397
    assert r["outputs"] == {"digit": {"kind": "classifier", "why": "convert: softmax over 10 classes"}}
    ref = r["reference"]
    assert ref["status"] == "measured"
    assert ref["metrics"]["digit"]["accuracy"] == pytest.approx(keras_accuracy, abs=1e-6)
    assert keras_accuracy >= 0.9
    assert len(r["results"]) == 3 * 2  # three artifacts × two thread counts, one target
    for cell in r["results"]:
        assert cell["status"] == "measured" and cell["target_used"] == "cpu", cell
        m, a = cell["metrics"]["digit"], cell["agreement"]["digit"]
        assert np.sum(m["confusion_matrix"]) == len(y) and np.trace(m["confusion_matrix"]) / len(y) == pytest.approx(
            m["accuracy"], abs=1e-6
        )
        assert m["top5_accuracy"] >= m["accuracy"]
        if cell["precision"] == "fp32":  # a float file reproduces Keras: same accuracy, every decision the same
            assert m["accuracy"] == pytest.approx(keras_accuracy, abs=1e-6) and a["top1_agreement"] == 1.0
            assert a["max_rel_error"] <= 1e-4 and a["cosine"] >= 0.999999
        else:
            assert abs(m["accuracy"] - keras_accuracy) <= 0.03 and a["top1_agreement"] >= 0.95, (m, a)
        lat = cell["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert cell["samples"] == len(y) and cell["init_ms"] > 0
        assert 0 < cell["peak_rss_mb"] < 400  # a fresh runtime-lane process, no TensorFlow in it
    assert any(c["pareto"] for c in r["results"])
    sizes = {c["artifact"]: c["size_bytes"] for c in r["results"]}
    assert r["recommendations"]["cpu"]["smallest"]["artifact"] == min(sizes, key=sizes.get) == "digits_int8.tflite"
    for name in ("report.json", "report.md", "report.html"):
        assert (d / "report" / name).stat().st_size > 500
    assert json.loads((d / "report" / "report.json").read_text())["results"] == json.loads(json.dumps(r["results"]))


def test_metrics_match_reference_implementations():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 20, 500).astype(float), rng.integers(0, 2, 500)  # many ties
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    m = task_metrics("forecaster", np.array([[2.0], [5.0]]), np.array([3.0, 4.0]), naive=np.array([1.0, 4.0]))
    assert m["mae"] == 1.0 and m["naive_mae"] == 1.0 and m["mae_vs_naive"] == 1.0
    m = task_metrics("anomaly_scorer", np.array([[0.1], [0.9], [0.8], [0.2]]), np.array([0, 1, 0, 0]), threshold=0.5)
    assert (m["precision"], m["recall"], m["roc_auc"]) == (0.5, 1.0, 1.0)


@pytest.mark.slow
def test_budgets_gate_ci_with_exit_4_naming_each_broken_budget(digits, tmp_path):
    d, *_ = digits
    proc = run_cli("validate", str(d / "convert"), "--data", str(d / "test.npz"), "--max-size-mb", "0.0001",
                   "--min-agreement", "0.5", "--out", str(tmp_path / "r"), "--no-reference", "--json")  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    report = json.loads(proc.stdout)
    broken = report["budgets_broken"]
    assert sorted(b["artifact"] for b in broken) == sorted(c["artifact"] for c in report["results"])
    assert {b["figure"] for b in broken} == {"size_mb"} and all(b["limit"] == 0.0001 for b in broken)
    assert proc.stderr.count("size_mb") == 3 and "3 budget(s) broken" in proc.stderr
    assert report["recommendations"]["cpu"]["reason"] == "every measured artifact breaks a budget"
    assert json.loads((tmp_path / "r" / "report.json").read_text())["budgets_broken"] == broken
    kept = run_cli("validate", str(d / "convert" / "digits_int8.tflite"), "--data", str(d / "test.npz"),
                   "--max-size-mb", "1", "--max-accuracy-drop", "0.03", "--out", str(tmp_path / "k"))  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert "smallest" in kept.stdout and "report.html" in kept.stdout


@pytest.mark.slow
def test_image_folder_and_run_directory_forms(digits, tmp_path):
    d, x, y, keras_accuracy = digits
    for i, (image, label) in enumerate(zip(x[:150], y[:150], strict=True)):
        folder = tmp_path / "images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0].round().astype(np.uint8), "L").save(folder / f"{i}.png")
    r = validate([d / "convert" / "digits_fp32.tflite"], data=tmp_path / "images", out=tmp_path / "r")
    cell = r["results"][0]
    assert r["data"]["samples"] == 150 and r["data"]["labels"] == [str(k) for k in range(10)]
    assert cell["metrics"]["digit"]["accuracy"] >= keras_accuracy - 0.05  # pixels rounded to 8 bits in the PNGs
    assert r["reference"]["status"] == "measured"  # found through the convert manifest beside the file


@pytest.mark.slow
def test_multi_input_multi_output_scored_per_named_output(tmp_path):
    from sklearn.datasets import load_digits

    path, feeds = keras_models.two_inputs_two_heads(tmp_path / "two.keras")
    np.savez(tmp_path / "calib.npz", **feeds)
    convert(path, tmp_path / "c", to="tflite:fp32,onnx:fp32", calib=tmp_path / "calib.npz")
    digits = load_digits()
    y = digits.target[digits.target < 5]
    x = feeds["features"]
    box = np.stack([x[:, :16].mean(1), x[:, 16:32].mean(1), x[:, 32:48].mean(1), x[:, 48:].mean(1)], axis=1)
    np.savez(tmp_path / "labelled.npz", **{"x:features": x, "x:tokens": feeds["tokens"], "y:box": box, "y:cls": y})
    r = validate([tmp_path / "c"], data=tmp_path / "labelled.npz", out=tmp_path / "r")
    assert {k: v["kind"] for k, v in r["outputs"].items()} == {"box": "regressor", "cls": "classifier"}
    for cell in r["results"]:
        assert cell["metrics"]["cls"]["accuracy"] == r["reference"]["metrics"]["cls"]["accuracy"] >= 0.9
        assert cell["metrics"]["box"]["mae"] == pytest.approx(r["reference"]["metrics"]["box"]["mae"], rel=1e-4)
        assert cell["agreement"]["cls"]["top1_agreement"] == 1.0


@pytest.mark.slow
def test_failed_invoke_and_unavailable_targets_are_reported_and_the_rest_go_on(coral, tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.uint8)])
    def total(x):
        return tf.reshape(tf.reduce_sum(tf.cast(x, tf.float32)), [1, 1])

    good = tmp_path / "sum.tflite"
    good.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([total.get_concrete_function()], total).convert())
    np.savez(tmp_path / "x.npz", x=np.arange(60, dtype=np.uint8).reshape(20, 3))
    r = validate([good, coral / "model_invoking_error.tflite"], data=tmp_path / "x.npz", targets=["cpu", "gpu"],
                 task="regressor", out=tmp_path / "r")  # fmt: skip
    by = {(c["artifact"], c["target_requested"]): c for c in r["results"]}
    assert by[("sum.tflite", "cpu")]["status"] == "measured"
    failed = [c for c in r["results"] if c["status"] == "failed"]
    assert [c["target_requested"] for c in failed] == ["cpu"]
    assert "unresolved custom op: fake-op-double" in failed[0]["reason"]  # the runtime's own words
    gpu = by[("sum.tflite", "gpu")]
    from edgekit.runtime.targets import litert_gpu

    if not litert_gpu().available:
        assert gpu["status"] == "unavailable" and gpu["reason"].startswith("gpu unavailable: ")
        assert r["recommendations"]["gpu"]["reason"] == "nothing measured on gpu"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("labels", "go from 5 to 14; the output has 10 classes (0..9)"),
        ("shape", "has samples of shape (64), the model takes (8, 8, 1)"),
        ("count", "label(s) for output 'digit'"),
        ("empty", "no readable images in class sub-folders"),
        ("target", "unknown target(s) ['tpu']"),
        ("nothing", "nothing could be measured: edgetpu unavailable"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(digits, tmp_path, case, message):
    d, x, y, _ = digits
    data, extra = tmp_path / "data.npz", []
    if case == "labels":
        np.savez(data, x=x, y=y + 5)
    elif case == "shape":
        np.savez(data, x=x.reshape(len(x), 64), y=y)
    elif case == "count":
        np.savez(data, x=x, y=y[:-3])
    elif case == "empty":
        data = tmp_path / "images"
        (data / "a").mkdir(parents=True)
    else:
        shutil.copy(d / "test.npz", data)
        extra = ["--targets", "tpu" if case == "target" else "edgetpu"]
    proc = run_cli("validate", str(d / "convert"), "--data", str(data), "--out", str(tmp_path / "r"), *extra)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_validate_parent_never_imports_tensorflow(digits, tmp_path):
    d, *_ = digits
    script = textwrap.dedent(
        f"""
        import json, sys
        from edgekit.cli import main
        code = main(["validate", {str(d / "convert")!r}, "--data", {str(d / "test.npz")!r},
                     "--out", {str(tmp_path / "r")!r}, "--json"])
        loaded = [m for m in {BUILD_LANE!r} if m in sys.modules]
        sys.stderr.write(json.dumps({{"code": code, "loaded": loaded}}) + "\\n")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600)
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["reference"]["status"] == "measured"  # the Keras model ran, in a child of the build lane


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(digits_report, digits):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (make test installs Debian's chromium where apt-get can)")
    d, *_ = digits
    page = d / "report" / "report.html"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={d / 'chromium'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dom = proc.stdout
    assert proc.returncode == 0 and "<table" in dom, proc.stderr[-1000:]
    rows = dom.split('<table id="results">')[1].split("</table>")[0].count("<tr")
    assert rows == 1 + len(digits_report["results"])  # header + one row per cell
    for figure in ("tradeoff", "latency", "task"):
        block = dom.split(f'<figure id="{figure}">')[1].split("</figure>")[0]
        assert "<svg" in block and block.count("<path") > 5, figure
    assert "confusion matrices" in dom and "Pareto" in dom
    assert not re.search(r"(src|href)=\"(https?:)?//", dom) and "<script" not in dom  # self-contained


@pytest.mark.slow
def test_uint8_pixels_feed_an_int8_input_as_values_not_bit_patterns(digits):
    from edgekit.runtime import load

    d, x, _, _ = digits
    pixels = x[:50].round()
    with load(d / "convert" / "digits_int8.tflite") as runner:
        assert runner.inputs[0].dtype == "int8"
        as_uint8 = runner.run(pixels.astype(np.uint8))[0]  # 200 is the value 200, not the int8 code -56
        np.testing.assert_array_equal(as_uint8, runner.run(pixels.astype(np.float32))[0])

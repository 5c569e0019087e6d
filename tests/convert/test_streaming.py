"""Streaming recurrent models (issue 29): one step per call, the state carried, int8 checked over long streams.

Real LSTM / GRU forecasters trained in seconds on a noisy sine, the real converter, LiteRT and ONNX Runtime.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_clean_failure, by_token, run_cli
from tests.keras_models import causal_conv_forecaster, explicit_state_twin, stacked_lstm, stateful_forecaster

pytestmark = pytest.mark.slow


def _keras_stream(model, stream: np.ndarray, states: list[np.ndarray], feed) -> np.ndarray:
    """A Keras model with explicit state stepped through ``stream``: its first output at every step."""
    ys = []
    for row in stream:
        out = model([feed(row), *states], training=False)
        ys.append(np.asarray(out[0]).ravel())
        states = [np.asarray(v) for v in out[1:]]
    return np.stack(ys)


def _stepped(path, stream: np.ndarray):
    import edgekit

    runner = edgekit.load(path)
    runner.reset()
    return runner, np.stack([runner.step(row)[0].ravel() for row in stream])


@pytest.fixture(scope="module")
def stateful(tmp_path_factory) -> dict:
    """The stateful forecaster converted (as streaming, without the flag) to fp32 and int8 TFLite and ONNX."""
    from edgekit.stages.convert import convert

    tmp = tmp_path_factory.mktemp("stateful")
    path, x = stateful_forecaster(tmp / "stateful.keras")
    np.save(tmp / "windows.npy", x)
    record = convert(
        path, tmp / "run", to="tflite:fp32,tflite:int8,onnx:fp32,onnx:int8", calib=str(tmp / "windows.npy")
    )
    return {"tmp": tmp, "path": path, "record": record, "stream": x[-50:].reshape(-1, 1)}  # 1,200 held-out steps


def _stateful_model(path):
    import keras

    model = keras.models.load_model(path)
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()
    return model


def test_a_stateful_model_converts_as_streaming_and_steps_like_keras(stateful):
    record = stateful["record"]
    assert record["failed"] == [] and record["conversion"]["streaming"]["step_vs_window_max_abs_diff"] <= 1e-5
    states = record["conversion"]["streaming"]["states"]
    layer = states[0]["layer"]  # the LSTM's name (Keras numbers it per session)
    names = [(s["input"], s["output"]) for s in states]
    assert names == [(f"{layer}_h", f"{layer}_h_next"), (f"{layer}_c", f"{layer}_c_next")], names
    kinds = {i["name"]: i["kind"] for i in record["contract"]["inputs"]}
    assert kinds[f"{layer}_h"] == kinds[f"{layer}_c"] == "state"
    for art in record["artifacts"]:
        assert art["streaming"] and art["stream"]["steps"] >= 1000 and art["verdict"] == "pass", art["stream"]

    # Keras' own answer: the stateful model over the stream's consecutive windows, its state carried between them
    model, stream = _stateful_model(stateful["path"]), stateful["stream"]
    want = np.stack([np.asarray(model(stream[i : i + 24][None], training=False)).ravel()
                     for i in range(0, len(stream), 24)])  # fmt: skip
    arts = by_token(record)
    runner, got = _stepped(stateful["tmp"] / "run" / arts["tflite:fp32"]["path"], stream)
    assert np.abs(got[23::24] - want).max() <= 1e-4, np.abs(got[23::24] - want).max()  # 1,200 steps, never reset
    _, onnx = _stepped(stateful["tmp"] / "run" / arts["onnx:fp32"]["path"], stream)
    assert np.abs(onnx[23::24] - want).max() <= 1e-4
    runner.reset()  # the stream again from the start gives the first outputs again
    again = np.stack([runner.step(row)[0].ravel() for row in stream[:5]])
    assert np.array_equal(again, got[:5])
    saved = runner.state
    first = runner.step(stream[5])[0]
    runner.state = saved
    assert np.array_equal(runner.step(stream[5])[0], first)  # a restored state continues the same way


def test_the_int8_stream_computes_in_integers_and_does_not_drift(stateful):
    from edgekit.converters.streaming import run_steps, to_streaming
    from edgekit.inspection import inspect_model

    arts = by_token(stateful["record"])
    path = stateful["tmp"] / "run" / arts["tflite:int8"]["path"]
    report = inspect_model(path)
    assert report["quantization"] == "int8" and all(i["dtype"] == "int8" for i in report["inputs"])
    step, spec = to_streaming(_stateful_model(stateful["path"]))
    stream = stateful["stream"]
    want = run_steps(step, spec, stream[None])[1][0]  # every step of the Keras one-step model
    _, got = _stepped(path, stream)
    err = np.abs(got - want)
    assert err.mean() <= 0.10 * np.ptp(want), (err.mean(), np.ptp(want))
    assert err[-100:].mean() <= 2 * err[:100].mean(), (err[:100].mean(), err[-100:].mean())


def test_stacked_recurrent_layers_convert_with_the_flag(tmp_path):
    from edgekit.stages.convert import convert

    path, x = stacked_lstm(tmp_path / "stacked.keras")
    np.save(tmp_path / "windows.npy", x)
    record = convert(path, tmp_path / "run", to="tflite:fp32,tflite:fp16,tflite:dynamic,tflite:int8,onnx:int8",
                     calib=str(tmp_path / "windows.npy"), streaming=True)  # fmt: skip
    assert record["failed"] == [], record["failed"]
    assert record["artifacts"][0]["path"] == "stacked_streaming_fp32.tflite"
    assert len(record["conversion"]["streaming"]["states"]) == 4  # h and c of both LSTMs
    for art in record["artifacts"]:
        assert art["verdict"] == "pass", (art["path"], art["parity"])
        assert art["stream"]["mean_error_over_spread"] <= 0.10 and art["stream"]["drift"] <= 2, art["stream"]


def test_an_explicit_state_twin_streams_and_its_int8_is_refused_in_one_line(stateful, tmp_path):
    import keras

    path = explicit_state_twin(stateful["path"], tmp_path / "twin.keras")
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(200, 1, 1)).astype(np.float32), rng.uniform(-0.5, 0.5, (200, 16)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x, h=h, c=rng.uniform(-1, 1, (200, 16)).astype(np.float32))
    res = run_cli("convert", str(path), "--out", str(tmp_path / "run"), "--to", "tflite:fp32,tflite:int8",
                  "--calib", str(tmp_path / "calib.npz"), "--json")  # fmt: skip
    failed = [line for line in res.stderr.splitlines() if line.startswith("edgekit: failed")]
    assert res.returncode == 3 and len(failed) == 1 and "--streaming" in failed[0], res.stderr
    record = json.loads(res.stdout)
    stream = stateful["stream"][:300]
    twin = keras.models.load_model(path)
    want = _keras_stream(twin, stream, [np.zeros((1, 16), np.float32)] * 2, lambda row: row[None, None])
    _, got = _stepped(tmp_path / "run" / record["artifacts"][0]["path"], stream)
    assert np.abs(got - want).max() <= 1e-4


def test_streaming_bad_input(tmp_path, stateful):
    import edgekit
    from edgekit.errors import InputError
    from edgekit.stages.convert import convert
    from tests.keras_models import dense_autoencoder

    path, _ = dense_autoencoder(tmp_path / "ae.keras")
    res = run_cli("convert", str(path), "--out", str(tmp_path / "run"), "--to", "tflite:fp32", "--streaming")
    assert_clean_failure(res, "--streaming needs a recurrent layer")
    assert not (tmp_path / "run").exists()
    record = convert(path, tmp_path / "plain", to="tflite:fp32")
    runner = edgekit.load(tmp_path / "plain" / record["artifacts"][0]["path"])
    with pytest.raises(InputError, match="not a streaming model"):
        runner.step(np.zeros(30, np.float32))
    streaming = edgekit.load(stateful["tmp"] / "run" / by_token(stateful["record"])["tflite:fp32"]["path"])
    with pytest.raises(InputError, match="takes 1 value"):
        streaming.step(np.zeros(3, np.float32))  # a row of the wrong width


def test_predict_and_run_py_stream_rows_as_the_runner_steps(stateful, tmp_path):
    import subprocess
    import sys

    import edgekit

    arts = by_token(stateful["record"])
    path = stateful["tmp"] / "run" / arts["tflite:int8"]["path"]
    rows = stateful["stream"][:300]
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",", header="value", comments="")
    res = run_cli("predict", str(path), str(tmp_path / "rows.csv"), "--stream", "--json")
    assert res.returncode == 0, res.stderr
    streamed = json.loads(res.stdout)
    runner = edgekit.load(path)
    runner.reset()
    by_hand = [float(runner.step(row)[0].ravel()[0]) for row in rows]
    assert [r["row"] for r in streamed] == list(range(300))
    assert [r["values"][0] for r in streamed] == pytest.approx(by_hand, abs=1e-6)

    bundled = run_cli("bundle", str(stateful["tmp"] / "run"), "--platform", "rpi", "--out", str(tmp_path / "b"))
    assert bundled.returncode == 0, bundled.stderr
    ran = subprocess.run([sys.executable, str(tmp_path / "b" / "run.py"), str(tmp_path / "rows.csv"), "--stream",
                          "--json"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    from_bundle = json.loads(ran.stdout)
    assert len(from_bundle) == 300
    manifest = json.loads((tmp_path / "b" / "edgekit.json").read_text())
    if manifest["model"]["file"] == path.name:
        assert [r["values"][0] for r in from_bundle] == pytest.approx(by_hand, abs=1e-6)

    np.savetxt(tmp_path / "wide.csv", np.zeros((5, 3)), delimiter=",")
    assert_clean_failure(run_cli("predict", str(path), str(tmp_path / "wide.csv"), "--stream"), "3 values", "takes 1")
    plain = run_cli("predict", str(path), str(tmp_path / "rows.csv"))
    assert_clean_failure(plain, "use --stream")


def test_validate_steps_each_window_through_a_streaming_file(stateful, tmp_path):
    from edgekit.stages.validate import validate
    from tests.keras_models import sine_windows

    x, y = sine_windows()
    np.savez(tmp_path / "test.npz", x=x[-120:], y=y[-120:])
    report = validate([stateful["tmp"] / "run"], data=tmp_path / "test.npz", out=tmp_path / "report")
    rows = [r for r in report["results"] if r["status"] == "measured"]
    assert len(rows) == 4 and all(r["latency_per"] == "step" and r["steps_per_window"] == 24 for r in rows)
    assert report["reference"]["status"] == "measured"
    for row in rows:  # the last step of each window, from zero state, against the windowed Keras model
        agreement = next(iter(row["agreement"].values()))
        limit = 1e-4 if row["precision"] == "fp32" else 0.1
        assert agreement["max_abs_error"] <= limit * max(1.0, float(np.abs(y).max())), (row["artifact"], agreement)


def test_the_sunspots_recipe_deploys_streaming_artifacts_beside_its_windowed_ones(tmp_path):
    from edgekit.pipeline import run
    from tests.helpers import REPO

    records = run(REPO / "models" / "lstm_sunspots.yaml", out=tmp_path / "run")
    streaming = records["convert_streaming"]
    assert streaming["failed"] == [] and {a["precision"] for a in streaming["artifacts"]} == {"fp32", "int8"}
    assert all(a["stream"]["within_tolerance"] for a in streaming["artifacts"])
    report = records["validate_streaming"]
    assert report["budgets_broken"] == [] and all(r["latency_per"] == "step" for r in report["results"])
    # the same test windows and Keras reference as the windowed files: the fp32 scores match theirs
    windowed = {r["precision"]: r for r in records["validate"]["results"] if r["format"] == "tflite"}
    stepped = {r["precision"]: r for r in report["results"] if r["format"] == "tflite"}
    for name, metrics in windowed["fp32"]["metrics"].items():
        assert stepped["fp32"]["metrics"][name]["mae"] == pytest.approx(metrics["mae"], rel=1e-3)
    # its Pi bundle, built streaming, forecasts along the whole series one year per row
    import csv
    import subprocess
    import sys

    res = run_cli("bundle", str(tmp_path / "run"), "--platform", "rpi", "--streaming", "--out", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr
    years = [float(r["SUNACTIVITY"]) for r in csv.DictReader((REPO / "models" / "sunspots.csv").open())]
    np.savetxt(tmp_path / "years.csv", np.array(years)[:, None], delimiter=",", header="SUNACTIVITY", comments="")
    ran = subprocess.run([sys.executable, str(tmp_path / "b" / "run.py"), str(tmp_path / "years.csv"), "--stream",
                          "--json"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    forecasts = json.loads(ran.stdout)
    assert len(forecasts) == len(years) and all(np.isfinite(r["values"][0]) for r in forecasts)
    assert_clean_failure(run_cli("bundle", str(tmp_path / "run" / "convert"), "--platform", "rpi", "--streaming",
                                 "--out", str(tmp_path / "b2")), "no streaming artifacts")  # fmt: skip


def test_the_sensor_scorer_streams_its_errors_and_mixed_repairs_its_int8(sensor_run, tmp_path):
    """The sensor recipe's causal autoencoder: its streaming files give y = each step's squared error, scored over
    the last 64 steps as the windowed model scores a window (validate: the same ROC-AUC in fp32); tflite:mixed on
    the one-step model (five inputs) keeps the layers int8 cannot carry float and its inputs in Keras order."""
    run_dir, records = sensor_run
    report = records["validate_streaming"]
    windowed = {r["precision"]: r for r in records["validate"]["results"] if r["format"] == "tflite"}
    stepped = {r["precision"]: r for r in report["results"] if r["format"] == "tflite"}
    assert stepped["fp32"]["latency_per"] == "step" and stepped["fp32"]["steps_per_window"] == 64
    auc = stepped["fp32"]["metrics"]["score"]["roc_auc"]
    assert auc == pytest.approx(windowed["fp32"]["metrics"]["score"]["roc_auc"], abs=1e-3) and auc >= 0.9

    from edgekit.stages.convert import convert

    record = convert(run_dir, tmp_path / "mixed", to="tflite:int8,tflite:mixed", calib=str(run_dir / "calib.npy"),
                     streaming=True)  # fmt: skip
    y = next(o for o in record["contract"]["outputs"] if o["name"] == "y")
    assert y["kind"] == "regression" and "smoothed_max over the last 64 steps" in y["why"]
    arts = by_token(record)
    mixed = arts["tflite:mixed"]
    states = [s["input"] for s in record["conversion"]["streaming"]["states"]]
    assert [i["name"] for i in mixed["inputs"]] == ["x", *states] and len(states) == 4  # h, c of both LSTMs
    assert mixed["verdict"] == "pass" and mixed["stream"]["within_tolerance"], (mixed["parity"], mixed["stream"])
    if arts["tflite:int8"]["verdict"] != "pass":
        assert mixed["float_layers"], mixed["search"]
    if mixed["search"]["size_vs_full_int8"] > 1.3:  # what the float layers cost is said, with the budget's bound
        assert any("kept float for the budget" in w and "x the full-int8 size" in w for w in record["warnings"])


def test_a_causal_conv1d_front_end_streams_with_its_last_steps_as_state(tmp_path):
    """A dilated causal Conv1D before an LSTM: the conv's last (3 - 1) * 2 input steps become a state buffer; the
    stepped fp32 file gives the windowed model's forecast at each window's end; a 'same' Conv1D is refused."""
    from edgekit.stages.convert import convert

    path, x = causal_conv_forecaster(tmp_path / "tcn.keras")
    np.save(tmp_path / "windows.npy", x)
    calib = str(tmp_path / "windows.npy")
    record = convert(path, tmp_path / "run", to="tflite:fp32,tflite:int8,onnx:fp32", calib=calib, streaming=True)
    assert record["failed"] == [], record["failed"]
    states = record["conversion"]["streaming"]["states"]
    assert states[0] == {"input": "front_buffer", "output": "front_buffer_next", "layer": "front", "shape": [4, 1]}
    for art in record["artifacts"]:
        assert art["verdict"] == "pass" and art["stream"]["within_tolerance"], (art["path"], art["stream"])
    import keras

    import edgekit

    model = keras.models.load_model(path)
    want = np.asarray(model(x[-20:], training=False)).ravel()
    for token in ("tflite:fp32", "onnx:fp32"):
        runner = edgekit.load(tmp_path / "run" / by_token(record)[token]["path"])
        got = []
        for window in x[-20:]:
            runner.reset()
            got.append([runner.step(row)[0].ravel() for row in window][-1])
        assert np.abs(np.ravel(got) - want).max() <= 1e-4, token

    same, _ = causal_conv_forecaster(tmp_path / "same.keras", padding="same")
    refused = run_cli("convert", str(same), "--streaming", "--to", "tflite:fp32", "--out", str(tmp_path / "no"))
    assert_clean_failure(refused, "'front' (Conv1D) needs more than the current step")
    assert not (tmp_path / "no").exists()

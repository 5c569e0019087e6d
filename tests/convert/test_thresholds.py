"""A threshold belongs to the artifact that produces the score: each scorer file's own, on the run's held-out
normal data, with the recipe's rule — checked independently of convert, then followed into validate and bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from edgekit.common.thresholds import calibrate_threshold
from edgekit.rundir import RunDir
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def test_each_scorer_artifact_is_judged_at_its_own_threshold(sensor_run, tmp_path):
    run = RunDir(sensor_run[0])
    task = run.read_record("train")["task"]
    rule = task["threshold_rule"]
    normal = np.load(run.normal_split)
    converted = run.convert.read_record("convert")
    scorers = [a for a in converted["artifacts"] if a["format"] in ("tflite", "onnx")]
    assert scorers and all("threshold" in a for a in scorers)
    for art in scorers:
        scores = edgekit.load(run.convert.root / art["path"]).run(normal)[0].ravel()
        own = calibrate_threshold(scores, rule["method"], rule["value"])
        assert art["threshold"] == pytest.approx(own, rel=1e-6), art["path"]
        assert art["threshold_calibration"]["samples"] == len(normal)
        if art["precision"] == "fp32":  # the float file's is the Keras model's, but for train's precision: train
            # calibrated in its training policy (mixed_bfloat16 where the CPU has bf16), convert on float32 scores
            assert art["threshold"] == pytest.approx(task["threshold"], rel=0.02)
    rows = {r["artifact"]: r for r in run.validate.read_record("validate")["results"] if r["status"] == "measured"}
    for art in scorers:
        row = next(r for label, r in rows.items() if label.endswith(art["path"]))
        assert row["threshold"] == art["threshold"]
        assert row["metrics"]["score"]["threshold"] == pytest.approx(art["threshold"], abs=1e-6)  # 6 decimals
    out = tmp_path / "rpi"
    made = run_cli("bundle", str(run.root), "--platform", "rpi", "--out", str(out), "--json")
    assert made.returncode == 0, made.stderr
    spec = json.loads(made.stdout)
    shipped = next(a for a in scorers if a["path"] == spec["model"]["file"])
    assert spec["postprocessing"]["threshold"] == shipped["threshold"]
    assert "this file's scores" in spec["postprocessing"]["threshold_method"]

"""Issue 22: the Raspberry Pi's own software stack (Debian 12 arm64 Python 3.11, the Pi's aarch64 wheels), run here
under qemu-user: bundles, zoo artifacts and state resets checked where they will run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.common.metrics import agreement_figure
from edgekit.runtime.pi import PiStack, pi_stack, unavailable_reason
from edgekit.stages.bundle import bundle
from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.slow  # builds the stack once (about 30 s), installs a bundle's requirements under emulation
EXPECTED = {"bird.bmp": "chickadee", "cat.bmp": "Egyptian cat", "grace_hopper.bmp": "military uniform"}


@pytest.fixture(scope="session")
def pi() -> PiStack:
    if why := unavailable_reason():
        pytest.skip(f"pi unavailable: {why}")
    return pi_stack()


@pytest.fixture(scope="module")
def classifier(coral, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pi") / "classifier_rpi"
    bundle(coral / "mobilenet_v2_1.0_224_quant.tflite", "rpi", labels=coral / "imagenet_labels.txt", out=out)
    return out


def test_the_stack_is_the_pis(pi):
    """Debian 12's Python 3.11 on aarch64, with the pinned wheels, recorded with a checksum (doctor shows it)."""
    ran = pi.run(
        ["-c", "import platform, numpy; print(platform.machine(), platform.python_version(), numpy.__version__)"]
    )
    machine, version, numpy_version = ran.stdout.split()
    assert (machine, version[:4], numpy_version) == ("aarch64", "3.11", "2.4.6"), ran.stderr
    assert pi.packages["ai-edge-litert"] == "1.4.0" and len(pi.checksum) == 64
    doctor = json.loads(run_cli("doctor", "--json").stdout)
    assert doctor["targets"]["pi"]["available"] and pi.checksum[:12] in doctor["targets"]["pi"]["detail"]


def test_the_coral_classifier_bundle_classifies_alike_on_pi_and_x86(pi, classifier, coral):
    """The bundle's own run.py and requirements.txt on the Pi's stack: the same top-1 for the three photos, scores
    within two quantization steps of x86's; verify --target pi installs, runs and compares; bench refuses to time
    emulation."""
    photos = [str(p) for p in sorted((coral / "images").glob("*.bmp"))]
    on_pi = run_cli("predict", str(classifier), *photos, "--target", "pi", "--json", timeout=900)
    assert on_pi.returncode == 0, on_pi.stderr
    x86 = json.loads(run_cli("predict", str(classifier), *photos, "--json").stdout)
    step = json.loads((classifier / "edgekit.json").read_text())["outputs"][0]["quantization"]["scale"]
    for a, b in zip(json.loads(on_pi.stdout), x86, strict=True):
        assert a["target_used"] == "pi" and a["emulated"] is True and a["input"] == b["input"]
        assert a["top"][0]["label"] == b["top"][0]["label"] == EXPECTED[Path(a["input"]).name]
        assert abs(a["top"][0]["score"] - b["top"][0]["score"]) <= 2 * step
        assert a["agrees_with_x86"] is True, a["x86_difference"]  # issue 28: predict compares as verify does
    # issue 28: a bundle folder given as a relative path (it was given twice to run.py)
    relative = run_cli("predict", classifier.name, photos[0], "--target", "pi", "--json", cwd=classifier.parent,
                       timeout=900)  # fmt: skip
    assert relative.returncode == 0 and json.loads(relative.stdout)[0]["agrees_with_x86"], relative.stderr
    verified = run_cli("verify", str(classifier), "--target", "pi", "--json", timeout=900)
    assert verified.returncode == 0, verified.stderr
    assert any("run.py on a sample agrees with x86" in c for c in json.loads(verified.stdout)["checks"])
    timed = run_cli("bench", str(coral / "mobilenet_v1_0.25_128_quant.tflite"), "--target", "pi")
    assert timed.returncode == 3 and "unavailable: pi: this host is not aarch64" in timed.stderr


def test_a_bundle_that_cannot_run_on_the_pi_fails_verify_in_one_line(pi, classifier, tmp_path):
    """A requirements.txt the Pi cannot install, and one that installs a runtime that crashes there (ai-edge-litert
    2.3.0's aarch64 wheel: SIGSEGV on its first interpreter under emulation, measured): exit 2, one line each."""
    cases = {
        "missing": ("no-such-package-edgekit==1.0\n", "requirements.txt does not install on the Pi"),
        "crashing": ("ai-edge-litert==2.3.0\nnumpy==2.4.6\npillow==13.0.0\n", "run.py fails on the Pi"),
    }
    for name, (requirements, message) in cases.items():
        broken = tmp_path / name
        shutil.copytree(classifier, broken)
        (broken / "requirements.txt").write_text(requirements)
        manifest = json.loads((broken / "edgekit.json").read_text())
        manifest["files"]["requirements.txt"] = hashlib.sha256(requirements.encode()).hexdigest()
        (broken / "edgekit.json").write_text(json.dumps(manifest))
        r = run_cli("verify", str(broken), "--target", "pi", timeout=900)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (name, r.stderr)


def test_zoo_artifacts_agree_across_architectures_and_the_lstm_resets_on_pi(pi, sensor_run, tmp_path):
    """The sensor anomaly run (an LSTM autoencoder) validated on cpu and pi: every TFLite artifact scored on both,
    no latency for the emulated cells (and why), int8 and fp32 agreeing with their x86 cells; its Pi bundle's
    recurrent state is reset before each window on the Pi as on x86."""
    run_dir, _ = sensor_run
    out = tmp_path / "validate"
    r = run_cli("validate", str(run_dir), "--targets", "cpu,pi", "--out", str(out), "--json", timeout=1800)
    assert r.returncode in (0, 4), r.stderr
    report = json.loads(r.stdout)
    pi_cells = [c for c in report["results"] if c["target_requested"] == "pi" and c["format"] == "tflite"]
    assert {c["precision"] for c in pi_cells} >= {"fp32", "int8"}
    for cell in pi_cells:
        assert cell["status"] == "checked" and cell["latency_ms"] is None and "emulated" in cell["latency_reason"]
        versus = next(iter(cell["agreement_with_cpu"].values()))
        _, value = agreement_figure(versus)
        assert value >= 0.99 and versus["max_rel_error"] <= 0.01, (cell["artifact"], versus)  # x86 vs aarch64
        cpu = next(c for c in report["results"] if c["path"] == cell["path"] and c["target_requested"] == "cpu")
        assert cell["metrics"].keys() == cpu["metrics"].keys()
    onnx = [c for c in report["results"] if c["target_requested"] == "pi" and c["format"] == "onnx"]
    assert all(c["status"] == "unavailable" and "TFLite" in c["reason"] for c in onnx)

    bundled = tmp_path / "sensor_rpi"
    assert run_cli("bundle", str(run_dir), "--platform", "rpi", "--out", str(bundled)).returncode == 0
    manifest = json.loads((bundled / "edgekit.json").read_text())
    assert manifest["state"]["reset_before_each_call"] is True
    steps = manifest["inputs"][0]["shape"][1]
    header, *rows = (REPO / "examples" / "data" / "sensor_stream.csv").read_text().splitlines()
    windows = [tmp_path / "normal.csv", tmp_path / "anomalous.csv"]  # the recorded stream: normal, then anomalies
    for path, end in zip(windows, (steps + 10, 560), strict=True):
        path.write_text("\n".join([header, *rows[end - steps : end]]) + "\n")
    order = [str(windows[0]), str(windows[1]), str(windows[0])]  # the first window again, after another
    on_pi = run_cli("predict", str(bundled), *order, "--target", "pi", "--json", timeout=900)
    assert on_pi.returncode == 0, on_pi.stderr
    scores = [s["score"] for s in json.loads(on_pi.stdout)]
    assert scores[0] == scores[2] and scores[0] != scores[1]  # reset: the same window scores the same
    x86 = [s["score"] for s in json.loads(run_cli("predict", str(bundled), *order, "--json").stdout)]
    assert np.allclose(scores, x86, rtol=1e-3, atol=1e-4), (scores, x86)

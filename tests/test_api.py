"""The Python API (issue 31): every CLI command a function of ``edgekit``, with the CLI's names, one path accepted
wherever several are, the settings importable from the top level, and type information shipped."""

from __future__ import annotations

import inspect
import json

import numpy as np

import edgekit
from tests.helpers import REPO, run_cli


def _commands() -> set[str]:
    from edgekit.cli import app

    return set(app.commands)


def test_every_cli_command_is_a_function_of_edgekit():
    functions = {"inspect": "inspect_model", "bench": "benchmark", "doctor": None}
    for command in _commands():
        name = functions.get(command, command)
        if name is not None:
            assert callable(getattr(edgekit, name)), command
    assert "zip" in inspect.signature(edgekit.bundle).parameters  # the CLI's --zip, not zip_archive
    from edgekit import Budgets, ConvertSettings, OptimizeSettings

    assert ConvertSettings(to="tflite:fp32").to == "tflite:fp32" and Budgets().active() == {}
    assert OptimizeSettings is not None and (REPO / "edgekit" / "py.typed").is_file()


def test_keygen_and_single_paths(coral, tmp_path):
    private, public = edgekit.keygen(tmp_path / "release")
    assert private.stat().st_mode & 0o077 == 0 and b"BEGIN PUBLIC KEY" in public.read_bytes()

    model = coral / "mobilenet_v1_0.25_128_quant.tflite"
    bundled = tmp_path / "bundle"
    edgekit.bundle(model, "rpi", labels=coral / "imagenet_labels.txt", out=bundled, sign=private, zip=True)
    assert bundled.with_suffix(".zip").is_file()
    photo = str(coral / "images" / "cat.bmp")
    results = edgekit.predict(bundled, photo)  # one path, not a list of its characters
    assert len(results) == 1 and results[0]["input"] == photo and results[0]["top"][0]["label"]
    assert edgekit.verify(bundled, key=public)["signature"].endswith("signature valid")

    x = np.random.default_rng(0).integers(0, 256, (4, 128, 128, 3)).astype(np.uint8)
    np.savez(tmp_path / "data.npz", x=x)
    report = edgekit.validate(str(model), data=tmp_path / "data.npz", out=tmp_path / "report")
    assert len(report["results"]) == 1 and report["results"][0]["status"] == "measured"


def test_the_cli_and_the_api_give_the_same_record(coral, tmp_path):
    model = coral / "mobilenet_v1_0.25_128_quant.tflite"
    cli = json.loads(run_cli("inspect", str(model), "--json").stdout)
    assert cli["ops_total"] == edgekit.inspect_model(model)["ops_total"]

"""The run directory's records: one version convention, one writer, checked when read (exit 2 on what no reader
of this version can trust)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from edgekit.errors import InputError
from edgekit.rundir import SCHEMA_VERSION, RunDir, model_source
from tests.helpers import CORAL, run_cli

MODEL = CORAL / "mobilenet_v1_0.25_128_quant.tflite"


def _convert_dir(tmp_path, **record):
    """A convert folder holding one Coral model and a hand-written record."""
    run = RunDir(tmp_path / "convert").prepare()
    shutil.copyfile(MODEL, run.root / MODEL.name)
    artifact = {"path": MODEL.name, "format": "tflite", "precision": "int8", "precision_token": "tflite:int8"}
    body = {"source": {"path": "m.keras"}, "settings": {}, "task": {}, "conversion": {}, "artifacts": [artifact],
            "failed": [], "warnings": [], **record}  # fmt: skip
    return run, body


def test_every_record_is_stamped_and_read_back(tmp_path):
    run, body = _convert_dir(tmp_path)
    written = run.write_record("convert", body)
    assert written["schema_version"] == SCHEMA_VERSION == "1.0.0" and written["stage"] == "convert"
    assert run.read_record("convert") == json.loads(run.manifest.read_text()) == written
    assert not list(run.root.glob("*.part"))  # written through a temporary name


def test_records_from_before_the_unified_version_still_read(tmp_path):
    run, body = _convert_dir(tmp_path)
    run.manifest.write_text(json.dumps({"edgekit_manifest": 1, "stage": "convert", **body}))
    assert run.read_record("convert")["artifacts"][0]["path"] == MODEL.name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": "2.0.0"}, "schema_version 2.0.0 is newer than edgekit reads (1.x): upgrade edgekit"),
        ({"schema_version": "0.9.0"}, "schema_version 0.9.0 is older than edgekit reads (1.x): run the stage again"),
        ({"schema_version": "one"}, "schema_version 'one' is not a semantic version"),
        ({"stage": "deploy"}, "unknown stage 'deploy'"),
        ({"artifacts": None}, None),  # present: required fields are checked by name, values by their readers
    ],
)
def test_a_record_no_reader_can_trust_is_one_line_and_exit_2(tmp_path, change, message):
    run, body = _convert_dir(tmp_path)
    record = {"schema_version": SCHEMA_VERSION, "stage": "convert", **body, **change}
    if message is None:
        record.pop("failed")
        message = "the convert record lacks failed"
    run.manifest.write_text(json.dumps(record))
    with pytest.raises(InputError, match=re.escape(message)):
        run.read_record()
    r = run_cli("validate", str(run.root), "--data", str(tmp_path / "none.npz"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_a_record_of_another_stage_is_refused_where_one_stage_is_expected(tmp_path):
    run, body = _convert_dir(tmp_path)
    run.write_record("convert", body)
    with pytest.raises(InputError, match="a convert record, where a train record was expected"):
        run.read_record("train")


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", "\xff\xfe"])
def test_unreadable_records_are_one_line(tmp_path, content):
    run = RunDir(tmp_path).prepare()
    run.manifest.write_bytes(content.encode("latin-1"))
    with pytest.raises(InputError, match=r"manifest\.json: "):
        run.read_record()


def test_the_model_behind_a_run_directory(tmp_path):
    run = RunDir(tmp_path).prepare()
    with pytest.raises(InputError, match=re.escape("no saved_model.pb, no manifest entry, no model.keras")):
        model_source(run.root)
    run.model.write_bytes(b"zip")
    assert model_source(run.root) == run.model

"""The run directory: the one place that names its files, and the one writer and reader of its stage records.

Every stage reads its inputs from a run directory and writes a *record* there: train, convert and optimize
write ``manifest.json``, validate writes ``report.json`` (beside ``report.md`` / ``report.html``), bundle
writes ``edgekit.json``. Every record carries ``schema_version`` (semantic, ``MAJOR.MINOR.PATCH``) and
``stage``; a reader refuses another major version, or a record of another stage, with one line (exit 2).
Records written before the versions were unified (``"edgekit_manifest": 1``) read as ``1.0.0``.

Layout of a run directory (every name below is spelled here and nowhere else)::

    runs/<name>/
      manifest.json     the train (or optimize) record
      model.keras       the float32 model;  model_qat/  a QAT SavedModel (optimize --qat)
      calib.npy         a sample of training inputs, for int8 calibration
      test.npz          the held-out split (x, y) that validate scores on
      normal.npy        anomaly detectors: held-out normal inputs each artifact's threshold is calibrated on
      convert/          the convert stage's run directory: artifacts + manifest.json
      baseline/         optimize: the source model converted, for comparison
      validate/         report.json, report.md, report.html
      .edgekit/         work files (temporary names, the convert worker's hand-off: WorkerFiles)

Example:
    >>> run = RunDir("runs/lstm_sunspots")
    >>> run.convert.manifest.as_posix(), run.test_split.name
    ('runs/lstm_sunspots/convert/manifest.json', 'test.npz')
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from edgekit.common.hints import with_hint
from edgekit.common.io import now, write_json
from edgekit.errors import InputError

SCHEMA_VERSION = "1.0.0"
STAGES = ("train", "convert", "optimize", "validate", "bundle")
# What a record of each stage must hold besides ``schema_version`` and ``stage``.
REQUIRED: dict[str, tuple[str, ...]] = {
    "train": ("recipe", "task", "metrics", "artifacts"),
    "convert": ("source", "settings", "task", "conversion", "artifacts", "failed", "warnings"),
    "optimize": ("source", "settings", "metrics", "task", "artifacts"),
    "validate": ("data", "results", "budgets_broken"),
    "bundle": ("platform", "model", "files"),
}


class Artifact(TypedDict, total=False):
    """One file a stage wrote, as its record lists it."""

    path: str  # relative to the record's folder
    format: str  # keras, savedmodel, tflite, onnx, npy, npz
    role: str  # model, calibration, test (train / optimize)
    precision: str  # fp32, fp16, dynamic, int8, 16x8, edgetpu (convert)
    precision_token: str  # tflite:int8 ...
    size_bytes: int
    sha256: str
    verdict: str  # pass, out_of_tolerance, unchecked
    parity: dict[str, Any]


class Record(TypedDict, total=False):
    """A stage record: the fields every stage writes, and those some stages do (see :data:`REQUIRED`)."""

    schema_version: str
    stage: str
    created_at: str
    source: dict[str, Any]  # convert, optimize: the model's path and sha256
    settings: dict[str, Any]
    task: dict[str, Any]  # how to read the model's output: labels, scaler, threshold
    conversion: dict[str, Any]  # convert: I/O names, output kinds, route, warnings
    recipe: dict[str, Any]  # train
    metrics: dict[str, Any]  # train, optimize
    artifacts: list[Artifact]
    failed: list[dict[str, Any]]  # convert
    warnings: list[str]  # convert
    data: dict[str, Any]  # validate
    results: list[dict[str, Any]]  # validate: one row per artifact × target × threads
    budgets_broken: list[dict[str, Any]]  # validate


@dataclass(frozen=True)
class WorkerFiles:
    """The convert stage's hand-off with its worker process (:mod:`edgekit.converters.worker`), in ``.edgekit/``.

    Example:
        >>> WorkerFiles(Path("runs/m/.edgekit")).job.name
        'job.json'
    """

    folder: Path

    @property
    def job(self) -> Path:  # what to convert (written by the parent)
        return self.folder / "job.json"

    @property
    def result(self) -> Path:  # each artifact's outcome, or a fatal error (written by the worker)
        return self.folder / "result.json"

    @property
    def meta(self) -> Path:  # the conversion record: I/O names, output kinds, warnings
        return self.folder / "meta.json"

    @property
    def reference(self) -> Path:  # held-out inputs (x:<name>) and the source's outputs on them (y:<name>)
        return self.folder / "reference.npz"

    @property
    def current(self) -> Path:  # the artifact the worker is on: names the one a crash cost
        return self.folder / "current"

    @property
    def calibration(self) -> Path:  # what a calibration callable returned
        return self.folder / "calib.npz"

    @property
    def source(self) -> Path:  # where a Keras model object is saved
        return self.folder / "source"


@dataclass(frozen=True)
class RunDir:
    """A run directory (or a stage's folder inside one) and the names of everything in it.

    Example:
        >>> RunDir("runs/ae").validate.report_json.as_posix()
        'runs/ae/validate/report.json'
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    # -- files ---------------------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def qat_model(self) -> Path:
        return self.root / "model_qat"

    @property
    def calibration(self) -> Path:
        return self.root / "calib.npy"

    @property
    def test_split(self) -> Path:
        return self.root / "test.npz"

    @property
    def normal_split(self) -> Path:  # anomaly detectors: held-out normal inputs, each artifact's threshold
        return self.root / "normal.npy"

    @property
    def work(self) -> Path:
        return self.root / ".edgekit"

    @property
    def worker(self) -> WorkerFiles:
        return WorkerFiles(self.work)

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def bundle_spec(self) -> Path:
        return self.root / "edgekit.json"

    # -- stage folders -------------------------------------------------------------------------
    @property
    def convert(self) -> RunDir:
        return RunDir(self.root / "convert")

    @property
    def convert_streaming(self) -> RunDir:
        """Where ``edgekit run`` converts a recipe's streaming artifacts (``convert: {streaming: true}``)."""
        return RunDir(self.root / "convert_streaming")

    @property
    def baseline(self) -> RunDir:
        return RunDir(self.root / "baseline")

    @property
    def validate(self) -> RunDir:
        return RunDir(self.root / "validate")

    # -- records -------------------------------------------------------------------------------
    def record_path(self, stage: str | None) -> Path:
        """Where a stage keeps its record here: ``report.json`` (validate), ``edgekit.json`` (bundle), else
        ``manifest.json``.

        Example:
            >>> RunDir("runs/m/validate").record_path("validate").name
            'report.json'
        """
        return {"validate": self.report_json, "bundle": self.bundle_spec}.get(stage or "", self.manifest)

    def prepare(self) -> RunDir:
        """Create the folder and its ``.edgekit`` work folder; fail with one line if it is not writable.

        Example:
            >>> RunDir("/proc/edgekit").prepare()
            Traceback (most recent call last):
            ...
            edgekit.errors.InputError: --out /proc/edgekit: not writable (No such file or directory)
        """
        try:
            self.work.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.work):
                pass
        except OSError as exc:
            raise InputError(f"--out {self.root}: not writable ({exc.strerror or exc})") from None
        return self

    def write_record(self, stage: str, body: dict[str, Any]) -> Record:
        """Stamp ``body`` with the schema version, stage and time, and write it atomically where ``stage`` keeps
        its record (:meth:`record_path`).

        Example:
            >>> RunDir("runs/m").write_record("convert", {"artifacts": []})["schema_version"]  # doctest: +SKIP
            '1.0.0'
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        record: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "stage": stage, "created_at": now(), **body}
        write_json(self.record_path(stage), record)
        return record  # type: ignore[return-value]

    def read_record(self, stage: str | None = None) -> Record | None:
        """The record where ``stage`` keeps it (any stage: ``manifest.json``), checked; None when there is none.

        A record of another major version, of another stage than ``stage``, or missing a field its stage
        requires is refused with one line.

        Example:
            >>> RunDir("runs/missing").read_record() is None
            True
        """
        path = self.record_path(stage)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InputError(f"{path}: unreadable record ({type(exc).__name__}: {exc})") from None
        return check_record(record, str(path), stage)


def model_source(source: str | Path) -> Path:
    """The Keras model behind ``source``: a ``.keras``/``.h5`` file, a SavedModel directory, or a run directory's model.

    Example:
        >>> model_source("missing.keras")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: missing.keras: no such file or directory
    """
    p = Path(source)
    if not p.exists():
        raise InputError(f"{source}: no such file or directory")
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return p
        run = RunDir(p)
        record = run.read_record() or {}
        for art in record.get("artifacts", []):
            if art.get("format") == "keras":
                return p / art["path"]
        if run.model.is_file():
            return run.model
        raise InputError(
            f"{source}: not a SavedModel nor a run directory with a Keras model (no saved_model.pb, "
            "no manifest entry, no model.keras)"
        )
    if p.suffix not in (".keras", ".h5"):
        raise InputError(
            with_hint(f"{source}: not a Keras model (expected .keras, .h5, a SavedModel or a run directory)", source)
        )
    if p.stat().st_size == 0:
        raise InputError(f"{source}: file is empty")
    return p


def run_task(source: str | Path) -> dict[str, Any]:
    """How to read a model's output (labels, scaler, anomaly threshold), carried over from its run directory.

    Example:
        >>> run_task("model.keras")
        {}
    """
    if Path(source).is_dir():
        return dict((RunDir(source).read_record() or {}).get("task", {}))
    return {}


def convert_entry(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The convert record of the folder a model file sits in and that file's entry, when the record lists it.

    Example:
        >>> convert_entry("model.tflite") is None
        True
    """
    p = Path(path)
    record = RunDir(p.parent).read_record() if p.parent.is_dir() else None
    if not record or record.get("stage") != "convert":
        return None
    entry = next((a for a in record.get("artifacts", []) if Path(a["path"]).name == p.name), None)
    return (dict(record), entry) if entry is not None else None


def check_version(
    version: str, where: str, *, newer: str = "upgrade edgekit", older: str = "run the stage again"
) -> None:
    """Refuse a ``schema_version`` that is not semantic, or of another major version than this reader's;
    ``newer`` / ``older`` say what to do about it.

    Example:
        >>> check_version("0.9.0", "edgekit.json", older="re-bundle")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: edgekit.json: schema_version 0.9.0 is older than edgekit reads (1.x): re-bundle
    """
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise InputError(f"{where}: schema_version {version!r} is not a semantic version (like {SCHEMA_VERSION})")
    major, mine = int(version.split(".")[0]), int(SCHEMA_VERSION.split(".")[0])
    if major != mine:
        relation, fix = ("newer", newer) if major > mine else ("older", older)
        raise InputError(f"{where}: schema_version {version} is {relation} than edgekit reads ({mine}.x): {fix}")


def check_record(record: Any, where: str, stage: str | None = None) -> Record:
    """Refuse a record that is not an object, of an unknown major version or stage, or missing required fields.

    Example:
        >>> check_record({"schema_version": "2.0.0", "stage": "convert"}, "m.json")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: m.json: schema_version 2.0.0 is newer than edgekit reads (1.x): upgrade edgekit
    """
    if not isinstance(record, dict):
        raise InputError(f"{where}: not an edgekit record (a JSON object), but {type(record).__name__}")
    check_version("1.0.0" if record.get("edgekit_manifest") == 1 else str(record.get("schema_version", "")), where)
    found = record.get("stage")
    if found not in STAGES:
        raise InputError(f"{where}: unknown stage {found!r} (expected one of {', '.join(STAGES)})")
    if stage is not None and found != stage:
        raise InputError(f"{where}: a {found} record, where a {stage} record was expected")
    if missing := [key for key in REQUIRED[found] if key not in record]:
        raise InputError(f"{where}: the {found} record lacks {', '.join(missing)}")
    return record  # type: ignore[return-value]


CALIBRATION_SAMPLES = 300


def save_calibration(run: RunDir, x_train: Any) -> Path:
    """A seeded sample of training inputs as ``calib.npy``: what ``convert`` calibrates int8 artifacts with.

    Example:
        >>> save_calibration(RunDir("runs/ae"), x_train).name  # doctest: +SKIP
        'calib.npy'
    """
    import numpy as np

    sample = x_train[np.random.default_rng(0).permutation(len(x_train))[:CALIBRATION_SAMPLES]]
    part = run.work / run.calibration.name
    np.save(part, sample.astype(np.float32))
    return part.replace(run.calibration)


def save_normal_split(run: RunDir, x_normal: Any) -> Path:
    """Held-out normal inputs as ``normal.npy``: what an anomaly scorer's threshold is calibrated on, for the
    Keras model in ``train`` and for each artifact in ``convert``.

    Example:
        >>> save_normal_split(RunDir("runs/ae"), x_val).name  # doctest: +SKIP
        'normal.npy'
    """
    import numpy as np

    part = run.work / run.normal_split.name
    np.save(part, x_normal.astype(np.float32) if x_normal.dtype.kind == "f" else x_normal)
    return part.replace(run.normal_split)


def save_test_split(run: RunDir, x_test: Any, y_test: Any) -> Path:
    """The held-out test split as ``test.npz`` (``x``, ``y``): what ``edgekit validate`` scores a run's artifacts on.

    ``y`` is what the model's output is judged against: class indices, the next value, or 1 for an anomaly.

    Example:
        >>> save_test_split(RunDir("runs/ae"), x_test, y_test).name  # doctest: +SKIP
        'test.npz'
    """
    import numpy as np

    part = run.work / run.test_split.name
    np.savez(part, x=x_test.astype(np.float32) if x_test.dtype.kind == "f" else x_test, y=y_test)
    return part.replace(run.test_split)

"""Plan a conversion: which artifacts to make, which to reuse, which failures to remember.

Each artifact has a content address (its cache key): the source's and calibration's sha256, the settings
that shape it, the tool versions and the converter code. An artifact on disk whose key and sha256 are
unchanged is reused; a deterministic failure under the same key (e.g. no 16x8 LSTM kernel) is remembered
rather than retried; a crash is retried.

Example:
    >>> plan = plan_conversion(run, inputs, settings, ["tflite:fp32"])  # doctest: +SKIP
    >>> [p.token for p in plan.todo]  # doctest: +SKIP
    ['tflite:fp32']
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.common.io import sha256_file, sha256_tree, tool_versions
from edgekit.rundir import RunDir
from edgekit.stages.convert.inputs import ConvertInputs
from edgekit.stages.convert.search import MIXED, search_job
from edgekit.stages.convert.settings import TARGET_TOKENS, ConvertSettings


@dataclass
class PlannedArtifact:
    """One artifact the worker will produce."""

    token: str
    path: Path
    key: str


@dataclass
class Plan:
    """The artifacts to produce (``todo``), those reused from an earlier run, and remembered failures."""

    tokens: list[str]
    todo: list[PlannedArtifact] = field(default_factory=list)
    reused: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    tools: dict[str, str | None] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)  # the run directory's earlier convert record
    kept: list[dict[str, Any]] = field(default_factory=list)  # earlier artifacts of the same source, not asked now
    dropped: list[str] = field(default_factory=list)  # earlier artifacts of another source, removed


def plan_conversion(run: RunDir, inputs: ConvertInputs, settings: ConvertSettings, tokens: list[str]) -> Plan:
    """Decide, token by token, whether to produce, reuse or skip (a remembered failure) each artifact.

    Example:
        >>> plan_conversion(run, inputs, ConvertSettings(), ["onnx:fp32"]).todo[0].path.name  # doctest: +SKIP
        'model_fp32.onnx'
    """
    tools = tool_versions()
    key_inputs = {
        "source": inputs.source_sha, "calib": inputs.calib_sha, "settings": settings.shaping(), "tools": tools,
        "code": _converter_code_sha(),
    }  # fmt: skip
    previous = run.read_record("convert") or {}
    earlier = {a["precision_token"]: a for a in previous.get("artifacts", []) if "precision_token" in a}
    # A deterministic failure (e.g. no 16x8 LSTM kernel) is remembered under its key; a crash is retried.
    failed = {f["token"]: f for f in previous.get("failed", []) if f.get("cache_key") and not f.get("crash")}
    plan = Plan(tokens, tools=tools, previous=dict(previous))
    for token in tokens:
        if token in TARGET_TOKENS:  # made from another artifact after the check, never by the worker
            continue
        fmt, precision = token.split(":")
        path = run.root / f"{inputs.stem}{'_streaming' if settings.streaming else ''}_{precision}.{fmt}"
        shaped_by = {**key_inputs, "search": search_job(inputs, settings)} if token in MIXED else key_inputs
        key = _cache_key(shaped_by, token)
        old = earlier.get(token)
        if old and old.get("cache_key") == key and path.is_file() and sha256_file(path) == old.get("sha256"):
            plan.reused.append({**old, "reused": True})
        elif token in failed and failed[token]["cache_key"] == key:
            plan.failures[token] = failed[token]
        else:
            plan.todo.append(PlannedArtifact(token, path, key))
    _earlier_artifacts(plan, run, inputs, earlier)
    return plan


def _earlier_artifacts(plan: Plan, run: RunDir, inputs: ConvertInputs, earlier: dict[str, dict[str, Any]]) -> None:
    """A second convert into the same folder: the earlier artifacts this call does not make again stay in the
    record when they were converted from the same source and are unchanged on disk; those of another source
    (a retrained model) are removed, and the record says which."""
    made = {p.path.name for p in plan.todo} | {a["path"] for a in plan.reused}
    same_source = (plan.previous.get("source") or {}).get("sha256") == inputs.source_sha
    for token, old in earlier.items():
        path = run.root / old["path"]
        if old["path"] in made or not path.is_file():
            continue
        if not same_source:
            path.unlink()
            plan.dropped.append(old["path"])
        elif token not in plan.tokens and sha256_file(path) == old.get("sha256"):
            plan.kept.append({**old, "kept_from_earlier_convert": True})


def _converter_code_sha() -> str:
    """sha256 over the converter sources, so a changed converter never reuses an old artifact."""
    spec = importlib.util.find_spec("edgekit.converters")  # located, not imported: it is the build lane
    assert spec is not None and spec.submodule_search_locations
    return sha256_tree(Path(spec.submodule_search_locations[0]))


def _cache_key(inputs: dict[str, Any], token: str) -> str:
    """Content address of one artifact: everything that shapes it (``inputs``) plus its token."""
    blob = json.dumps({**inputs, "token": token}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()

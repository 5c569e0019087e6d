"""Check each produced artifact against its source on held-out inputs and give it a verdict.

A float artifact (fp32, fp16) out of tolerance, or any artifact whose inputs or outputs are not the
source's by name and order, is *wrong*: it is removed and listed under ``failed``. A quantized one out of
its task-aware tolerance is kept and marked ``out_of_tolerance`` (see :mod:`edgekit.common.parity`).

Example:
    >>> checked = check_produced(plan, results, meta, run)  # doctest: +SKIP
    >>> [a["verdict"] for a in checked.artifacts]  # doctest: +SKIP
    ['pass', 'out_of_tolerance']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.io import sha256_file
from edgekit.common.parity import FLOAT_TOLERANCE, compare
from edgekit.errors import ConversionError, EdgekitError
from edgekit.rundir import RunDir
from edgekit.stages.convert.plan import Plan

Progress = Callable[[str], None]


@dataclass
class CheckData:
    """The held-out inputs and the source's outputs on them, by name, and the conversion record."""

    x: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    meta: dict[str, Any]

    @classmethod
    def load(cls, run: RunDir, meta: dict[str, Any]) -> CheckData:
        """What the worker stored in ``.edgekit/reference.npz``."""
        with np.load(run.worker.reference) as ref:
            x = {k[2:]: ref[k] for k in ref.files if k.startswith("x:")}
            reference = {name: ref[f"y:{name}"] for name in meta["outputs"]}
        return cls(x, reference, meta)


@dataclass
class Checked:
    """Artifacts with their verdicts, failures by token, and the data they were checked on (None: nothing new)."""

    artifacts: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: CheckData | None = None


def check_produced(
    plan: Plan, results: dict[str, Any], meta: dict[str, Any], run: RunDir, progress: Progress | None = None
) -> Checked:
    """Verdicts for every produced artifact; failed and wrong ones are removed from disk and listed as failures.

    Example:
        >>> check_produced(plan, results, meta, RunDir("runs/m")).failures  # doctest: +SKIP
        {}
    """
    checked = Checked(list(plan.reused), dict(plan.failures))
    if not plan.todo:
        return checked
    checked.data = data = CheckData.load(run, meta)
    for item in plan.todo:
        outcome = results.get(item.token, {"ok": False, "error": f"{item.token}: not produced"})
        if not outcome["ok"]:
            checked.failures[item.token] = {
                "token": item.token, "error": outcome["error"], "cache_key": item.key,
                "crash": bool(outcome.get("crash")), "unsupported_op": bool(outcome.get("unsupported_op")),
            }  # fmt: skip
            item.path.unlink(missing_ok=True)
            continue
        if progress:
            progress(f"checking {item.path.name}")
        try:
            entry = check_artifact(item.path, item.token, item.key, outcome["seconds"], data.x, data.reference, meta)
            if "search" in outcome:
                entry = searched(item.token, entry, outcome["search"])
            checked.artifacts.append(entry)
        except ConversionError as exc:
            failure = {"token": item.token, "error": str(exc), "cache_key": item.key, "crash": False}
            if "search" in outcome:  # the closest candidate and every one tried
                failure["search"] = outcome["search"]
            checked.failures[item.token] = failure
            if isinstance(exc, WrongArtifactError):
                checked.failures[item.token]["parity"] = exc.parity
            item.path.unlink(missing_ok=True)
    return checked


def searched(token: str, entry: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """A ``tflite:mixed`` / ``onnx:mixed`` entry with what its search found (:mod:`edgekit.converters.mixed`); a
    search that ended outside its budget fails the artifact, naming the closest candidate.

    Example:
        >>> searched("tflite:mixed", {"path": "m_mixed.tflite"}, {"float_layers": [], "budget": {},
        ...          "within_budget": True})
        {'path': 'm_mixed.tflite', 'float_layers': [], 'budget': {}, 'search': {'within_budget': True}}
    """
    if not report["within_budget"]:
        layers = ", ".join(report["float_layers"]) or "none"
        raise ConversionError(
            f"{token}: no candidate within the budget {report['budget']} after "
            f"{len(report.get('candidates', []))} tried; the closest (float layers: {layers}) breaks "
            + "; ".join(report["broken"])
        )
    rest = {k: v for k, v in report.items() if k not in ("float_layers", "budget")}
    return {**entry, "float_layers": report["float_layers"], "budget": report["budget"], "search": rest}


class WrongArtifactError(ConversionError):
    """A float artifact that does not reproduce its source, or one whose inputs/outputs are not the source's."""

    def __init__(self, message: str, parity: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.parity = parity or {}


def out_of_tolerance(parity: dict[str, Any]) -> str:
    """One line naming each output outside its tolerance and the figure that put it there.

    Example:
        >>> check = {"figure": "nrmse", "value": 0.86, "limit": 0.25}
        >>> out_of_tolerance({"failing_outputs": ["score"], "outputs": {"score": {"check": check}}})
        "out of tolerance: output 'score' nrmse 0.86 > 0.25"
    """
    parts = []
    for name in parity.get("failing_outputs", []):
        out = parity["outputs"].get(name)
        if out is None or "check" not in out:
            parts.append(f"output {name!r} " + (f"has shape {out['shape_mismatch'][1]}" if out else "missing"))
            continue
        check = out["check"]
        relation = "<" if check["figure"].endswith(("agreement", "match")) else ">"
        parts.append(f"output {name!r} {check['figure']} {check['value']:.3g} {relation} {check['limit']:g}")
    return "out of tolerance: " + "; ".join(parts)


def check_artifact(
    path: Path,
    token: str,
    key: str,
    seconds: float,
    x: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Run the artifact on the held-out inputs and give it a verdict; return its manifest entry.

    ``x`` and ``reference`` are the check inputs and the source's outputs by
    name; ``meta`` is the conversion record (input and output names in Keras
    order, how each output is compared). An artifact whose inputs or outputs
    are not the source's, by name and order, or a float artifact out of
    tolerance, raises :class:`WrongArtifactError`; a quantized one out of
    tolerance gets ``verdict: out_of_tolerance``.

    Example:
        >>> entry = check_artifact(Path("m_fp32.tflite"), "tflite:fp32", "", 0.0, x, ref, meta)  # doctest: +SKIP
        >>> entry["verdict"]  # doctest: +SKIP
        'pass'
    """
    from edgekit.inspection import inspect_model
    from edgekit.runtime import load

    fmt, precision = token.split(":")
    start = time.perf_counter()
    inputs = [spec["name"] for spec in meta["inputs"]]
    try:
        runner = load(path)
        have_in, have_out = [s.name for s in runner.inputs], [s.name for s in runner.outputs]
        if have_in != inputs or have_out != meta["outputs"]:
            raise WrongArtifactError(
                f"{token}: the artifact's inputs {have_in} / outputs {have_out} are not the model's "
                f"{inputs} / {meta['outputs']} (names in Keras order)"
            )
        outputs = dict(zip(have_out, runner.run(x), strict=True))
    except WrongArtifactError:
        raise
    except EdgekitError as exc:
        flex = fmt == "tflite" and any(op.startswith("CUSTOM:Flex") for op in inspect_model(path)["op_histogram"])
        if not flex:
            raise ConversionError(f"{token}: the converted file does not run: {exc}") from None
        parity: dict[str, Any] = {"unavailable": f"LiteRT's pip wheel has no Flex delegate for TF select ops: {exc}"}
        verdict = "unchecked"
    else:
        kinds = {name: out["kind"] for name, out in meta.get("output_kinds", {}).items()}
        parity = compare(reference, outputs, kinds=kinds, precision=precision)
        verdict = "pass" if parity["within_tolerance"] else "out_of_tolerance"
        if verdict != "pass" and precision in FLOAT_TOLERANCE:
            raise WrongArtifactError(f"{token}: wrong artifact, {out_of_tolerance(parity)}", parity)
    parity["check_seconds"] = round(time.perf_counter() - start, 3)
    report = inspect_model(path)
    return {
        "path": path.name,  # artifacts sit at the top of the run directory
        "format": fmt,
        "precision": precision,
        "precision_token": token,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "inputs": report["inputs"],
        "outputs": report["outputs"],
        "needs_state_reset": report["needs_state_reset"],
        "verdict": verdict,
        "parity": parity,
        "convert_seconds": seconds,
        "cache_key": key,
        "reused": False,
    }

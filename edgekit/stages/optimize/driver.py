"""``edgekit optimize``: pruning, clustering and QAT for Keras 3 models, through the tf_keras bridge.

The source model (a run directory from ``train``, or a ``.keras`` file with ``data``) is rebuilt in
tf_keras with nested models inlined, checked for parity, optimized by the requested passes (each
fine-tuned on the training split), and written back (:mod:`edgekit.buildlane.optimize` does this part, in
this process, with TensorFlow imported lazily). :func:`edgekit.pipeline.optimize` then converts the
source and the result, and :mod:`~edgekit.stages.optimize.measures` records what the passes bought.

Example:
    >>> result = optimize_model("runs/mobilenet_digits", OptimizeSettings(prune=0.5))  # doctest: +SKIP
    >>> [side.name for side in result.sides()]  # doctest: +SKIP
    ['before', 'after']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.rundir import Record, RunDir
from edgekit.stages.optimize.settings import OptimizeSettings

Progress = Callable[[str], None]


@dataclass
class Side:
    """The source (``before``) or the optimized model (``after``), and where it is converted."""

    name: str
    model: Path
    out: RunDir
    tokens: str
    record: Record | None = None  # its convert record, once converted


@dataclass
class Optimized:
    """An optimize run between its passes and its measures."""

    run: RunDir
    settings: OptimizeSettings
    source: Any  # edgekit.buildlane.optimize.Source
    passed: Any  # edgekit.buildlane.optimize.Passed
    started: float
    _sides: list[Side] = field(default_factory=list)

    def sides(self) -> list[Side]:
        """The source and the result, each with the outputs to convert it to.

        A QAT graph is only meant as int8: a float file drops its fake-quant ops and differs from it (1.9 %).
        """
        if not self._sides:
            qat = self.passed.artifact["format"] == "savedmodel"
            self._sides = [
                Side("before", self.source.model_path, self.run.baseline, "tflite:fp32,tflite:int8"),
                Side("after", self.passed.path, self.run.convert, "tflite:int8" if qat else "tflite:fp32,tflite:int8"),
            ]
        return self._sides


def optimize_model(source: str | Path, settings: OptimizeSettings, progress: Progress | None = None) -> Optimized:
    """Run the passes of ``settings`` on ``source``; the run directory holds the result, its calibration and
    test split (the optimize record is written by :func:`~edgekit.stages.optimize.measures.measure`).

    Example:
        >>> optimize_model("runs/lstm_sunspots", OptimizeSettings(prune=0.5)).passed.scores  # doctest: +SKIP
        {'before': 14.2, 'after': 14.5}
    """
    from edgekit.buildlane.optimize import load_source, run_passes

    settings.check()
    src = load_source(source, settings)
    run = RunDir(settings.out or Path("runs") / f"{src.model_path.parent.name or src.model_path.stem}_optimized")
    run.prepare()
    start = time.perf_counter()
    return Optimized(run, settings, src, run_passes(src, settings, run, progress), start)

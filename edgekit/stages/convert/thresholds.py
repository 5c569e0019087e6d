"""Each anomaly scorer artifact's own threshold, calibrated on the held-out normal data of its run.

The Keras model's threshold was calibrated on its own scores of the run's held-out normal samples
(``normal.npy``) with the recipe's rule. A quantized scorer's scores are shifted and clipped against the
float model's (an int8 file's can sit far above the Keras threshold on every normal sample), so the same
rule is applied to each artifact's scores of the same samples; the threshold travels with the artifact
into ``validate`` and the bundles.

Example:
    >>> calibrate_artifact_thresholds(checked, inputs, RunDir("runs/ae/convert"))  # doctest: +SKIP
    >>> int8 = checked.artifacts[1]  # doctest: +SKIP
    >>> int8["threshold"], int8["threshold_calibration"]["keras_threshold"]  # doctest: +SKIP
    (0.93, 0.41)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.common.thresholds import calibrate_threshold
from edgekit.errors import EdgekitError
from edgekit.rundir import RunDir
from edgekit.runtime import load
from edgekit.runtime.streams import step_windows
from edgekit.stages.convert.check import Checked
from edgekit.stages.convert.inputs import ConvertInputs


def calibrate_artifact_thresholds(
    checked: Checked, inputs: ConvertInputs, run: RunDir, window_reduce: dict[str, Any] | None = None
) -> None:
    """Add ``threshold`` and ``threshold_calibration`` to every checked scorer artifact that has none yet.

    Only runs whose task is an ``anomaly_scorer`` with a ``threshold_rule`` and a ``normal.npy`` get one;
    an Edge TPU file (compiled later, by the ``edgetpu`` target step) inherits its int8 file's. A streaming
    scorer (``window_reduce``) scores each normal window stepped through from zero state.

    Example:
        >>> calibrate_artifact_thresholds(checked, inputs, RunDir("runs/ae/convert"))  # doctest: +SKIP
        >>> checked.artifacts[0]["threshold_calibration"]["rule"]  # doctest: +SKIP
        "mean_std 3 on this file's scores of held-out normal data"
    """
    rule = inputs.run_task.get("threshold_rule")
    if inputs.run_task.get("type") != "anomaly_scorer" or not rule or inputs.normal is None:
        return
    normal = np.load(inputs.normal, allow_pickle=False)
    for entry in checked.artifacts:
        if "threshold" in entry:  # reused from an earlier run
            continue
        try:
            runner = load(run.root / entry["path"])
            scores = step_windows(runner, normal, window_reduce) if window_reduce else runner.run(normal)[0]
        except EdgekitError:  # a file that does not run here (no Flex delegate): no threshold of its own
            continue
        entry["threshold"] = calibrate_threshold(scores.reshape(len(scores), -1)[:, 0], rule["method"], rule["value"])
        entry["threshold_calibration"] = {
            "rule": f"{rule['method']} {rule['value']:g} on this file's scores of held-out normal data",
            "samples": len(normal),
            "keras_threshold": inputs.run_task.get("threshold"),
        }

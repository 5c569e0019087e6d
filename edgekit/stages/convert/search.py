"""What the ``tflite:mixed`` / ``onnx:mixed`` search in the worker measures against: the budget, the data, a
scorer's normal data.

The search itself (TensorFlow's side) is :mod:`edgekit.converters.mixed`; this is the parent's half: it
decides the budget (flags, else the run recipe's ``validate.budgets``, else agreement >= 0.99) and the
evaluation data (``--data``, else the run's labelled test split, else the held-out calibration sample),
and its content enters the artifact's cache key.

Example:
    >>> search_job(inputs, ConvertSettings(min_agreement=0.98))["budget"]  # doctest: +SKIP
    {'min_agreement': 0.98}
"""

from __future__ import annotations

from typing import Any

from edgekit.common.io import sha256_file
from edgekit.stages.convert.inputs import ConvertInputs
from edgekit.stages.convert.settings import ConvertSettings

MIXED = ("tflite:mixed", "onnx:mixed")


def search_job(inputs: ConvertInputs, settings: ConvertSettings) -> dict[str, Any]:
    """The worker job's ``mixed`` section; also the part of a mixed token's cache key the others lack.

    Example:
        >>> search_job(inputs, ConvertSettings())["budget_from"]  # doctest: +SKIP
        'the default (agreement >= 0.99)'
    """
    budget, origin = settings.budget(inputs.recipe_budgets)
    data = settings.data or (str(inputs.test_split) if inputs.test_split else None)
    return {
        "budget": budget, "budget_from": origin,
        "data": data, "data_sha256": sha256_file(data) if data else None,
        "normal": str(inputs.normal) if inputs.normal else None,
        "normal_sha256": sha256_file(inputs.normal) if inputs.normal else None,
        "threshold_rule": inputs.run_task.get("threshold_rule"),
    }  # fmt: skip

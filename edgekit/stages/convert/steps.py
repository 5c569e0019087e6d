"""Target steps: outputs made from a checked artifact after the conversion (today the Edge TPU compiler).

A step takes the run directory, the checked artifacts and the settings, may add an artifact or a failure
to ``checked``, and returns its section of the convert record (stored under its token). A new target is a
new entry here and a small module, not a new branch in the driver.

Example:
    >>> sorted(TARGET_STEPS)
    ['edgetpu']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgekit.rundir import RunDir
from edgekit.stages.convert.check import Checked
from edgekit.stages.convert.edgetpu import edgetpu_step
from edgekit.stages.convert.settings import EDGETPU, TARGET_TOKENS, ConvertSettings

TargetStep = Callable[[RunDir, Checked, ConvertSettings], dict[str, Any]]
TARGET_STEPS: dict[str, TargetStep] = {EDGETPU: edgetpu_step}
assert set(TARGET_STEPS) == set(TARGET_TOKENS)

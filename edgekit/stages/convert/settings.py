"""One typed settings object for ``edgekit convert``: the CLI, the recipe's ``convert:`` section, the Python API,
the cache key, the worker's job and the manifest all read it.

Example:
    >>> s = ConvertSettings(to="tflite:fp32,onnx:fp32")
    >>> s.tokens(has_calib=False)
    ['tflite:fp32', 'onnx:fp32']
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from edgekit.common.parity import TASKS
from edgekit.contract import OUTPUT_KINDS, parse_named, parse_range, parse_shape
from edgekit.errors import InputError

EDGETPU = "edgetpu"
TOKENS = (
    "tflite:fp32", "tflite:fp16", "tflite:dynamic", "tflite:int8", "tflite:16x8", "tflite:mixed", "onnx:fp32",
    "onnx:int8", "onnx:mixed", EDGETPU,
)  # fmt: skip
DEFAULT_WITH_CALIB = ("tflite:fp32", "tflite:fp16", "tflite:dynamic", "tflite:int8", "onnx:fp32", "onnx:int8")
DEFAULT_WITHOUT_CALIB = ("tflite:fp32", "tflite:fp16", "tflite:dynamic", "onnx:fp32")
NEEDS_CALIB = {"tflite:int8", "tflite:16x8", "tflite:mixed", "onnx:int8", "onnx:mixed", EDGETPU}
# Outputs made from another artifact after it is checked (target steps), never by the converter worker.
TARGET_TOKENS = (EDGETPU,)
# What ``edgekit run`` converts a trained model to when the recipe does not say.
RUN_DEFAULT_TO = "tflite:fp32,tflite:int8,onnx:fp32"
# Settings that do not shape an artifact's bytes, so they stay out of its cache key and the worker's job
# (the budget and ``data`` shape only the mixed tokens: they enter their key through the search job).
BUDGET_FIELDS = ("max_accuracy_drop", "max_error", "min_agreement")
NOT_IN_KEY = ("to", "custom_objects", "strict", "timeout", "data", "labels", *BUDGET_FIELDS)
DEFAULT_MIXED_BUDGET = {"min_agreement": 0.99}  # top-1 / decision agreement, else cosine


@dataclass
class ConvertSettings:
    """How to convert: outputs, calibration and check sizes, I/O types, back-end options.

    ``to`` is a comma-separated list of :data:`TOKENS` (None: every output the data allows);
    ``int8_granularity`` is ``per-channel`` (weights scaled per output channel: the accurate default) or
    ``per-tensor`` (one scale per weight tensor: smaller files); ``task`` overrides the detected task
    (see :data:`edgekit.common.parity.TASKS`); ``strict`` makes an out-of-tolerance quantized artifact exit 3.
    ``outputs`` (comma-separated layer names) converts the model ending at those layers' outputs, e.g. a VAE's
    deterministic ``z_mean``. ``data`` (an ``.npz`` with ``x`` and ``y``) and the budget fields (the meanings
    of ``edgekit validate``'s flags) are what ``tflite:mixed`` and ``onnx:mixed`` search against.
    ``input_range`` (``[NAME=]LO,HI``, ``;``-separated), ``output_kind`` (``[NAME=]KIND``) and ``labels`` (a
    labels file) are facts about the model that its contract (:mod:`edgekit.contract`) cannot read from it.
    ``streaming`` converts a recurrent sequence model into one-step artifacts with explicit state inputs and
    outputs (:mod:`edgekit.converters.streaming`), checked over a long stream.

    Example:
        >>> ConvertSettings(int8_io="int4").check()
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --int8-io must be int8, uint8 or float32, got 'int4'
    """

    to: str | None = None
    calib_samples: int = 200
    check_samples: int = 64
    batch: int = 1
    opset: int = 17
    int8_io: str = "int8"
    int8_granularity: str = "per-channel"
    custom_objects: str | None = None
    outputs: str | None = None
    unsafe: bool = False
    allow_select_tf_ops: bool = False
    task: str | None = None
    strict: bool = False
    timeout: float = 1800.0
    data: str | None = None
    max_accuracy_drop: float | None = None
    max_error: float | None = None
    min_agreement: float | None = None
    input_range: str | None = None
    output_kind: str | None = None
    labels: str | None = None
    streaming: bool = False
    input_shape: str | None = None

    @classmethod
    def from_options(cls, **options: Any) -> ConvertSettings:
        """Settings from keyword arguments (the CLI's options, the API's keywords); unknown names are refused.

        Example:
            >>> ConvertSettings.from_options(to="onnx:fp32", batch=2).batch
            2
        """
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(options) - known):
            raise TypeError(f"unknown convert setting(s): {', '.join(unknown)}")
        paths = ("custom_objects", "data", "labels")
        given = {k: (str(v) if k in paths and v is not None else v) for k, v in options.items()}
        return cls(**given)

    def check(self) -> ConvertSettings:
        """Refuse values no conversion can use, with one line naming the flag."""
        if self.int8_io not in ("int8", "uint8", "float32"):
            raise InputError(f"--int8-io must be int8, uint8 or float32, got {self.int8_io!r}")
        if self.int8_granularity not in ("per-channel", "per-tensor"):
            raise InputError(f"--int8-granularity must be per-channel or per-tensor, got {self.int8_granularity!r}")
        if self.batch < 1 or self.calib_samples < 1 or self.check_samples < 1:
            raise InputError("--batch, --calib-samples and --check-samples must be >= 1")
        if self.task is not None and self.task not in TASKS:
            raise InputError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.labels is not None and not os.path.isfile(self.labels):
            raise InputError(f"--labels {self.labels}: no such labels file")
        for name, value in parse_named(self.input_range, "--input-range").items():
            parse_range(value, "--input-range" + (f" {name}" if name else ""))
        for name, value in parse_named(self.output_kind, "--output-kind").items():
            if value not in OUTPUT_KINDS:
                raise InputError(f"--output-kind{' ' + name if name else ''}: {value!r} is not one of "
                                 f"{', '.join(OUTPUT_KINDS)}")  # fmt: skip
        for name, value in parse_named(self.input_shape, "--input-shape").items():
            parse_shape(value, "--input-shape" + (f" {name}" if name else ""))
        if self.data is not None and not (self.data.endswith(".npz") and os.path.isfile(self.data)):
            raise InputError(f"--data {self.data}: not an .npz file (x and y arrays, as edgekit validate takes)")
        return self

    def budget(self, recipe_budgets: dict[str, float] | None = None) -> tuple[dict[str, float], str]:
        """What ``tflite:mixed`` must meet, and where it came from: the flags, else the recipe's
        ``validate.budgets`` (their accuracy, error and agreement limits), else agreement >= 0.99.

        Example:
            >>> ConvertSettings(max_error=0.5).budget({"min_agreement": 0.9})
            ({'max_error': 0.5}, 'flags')
            >>> ConvertSettings().budget({"min_agreement": 0.9, "max_size_mb": 1.0})
            ({'min_agreement': 0.9}, "the recipe's validate.budgets")
        """
        flags = {k: getattr(self, k) for k in BUDGET_FIELDS if getattr(self, k) is not None}
        if flags:
            return flags, "flags"
        recipe = {k: float(v) for k, v in (recipe_budgets or {}).items() if k in BUDGET_FIELDS and v is not None}
        if recipe:
            return recipe, "the recipe's validate.budgets"
        return dict(DEFAULT_MIXED_BUDGET), "the default (agreement >= 0.99)"

    def tokens(self, has_calib: bool) -> list[str]:
        """The outputs to produce: ``to`` checked, else every output the data allows.

        Example:
            >>> ConvertSettings(to="edgetpu", int8_io="uint8").tokens(has_calib=True)
            ['tflite:int8', 'edgetpu']
        """
        if not self.to:
            return list(DEFAULT_WITH_CALIB if has_calib else DEFAULT_WITHOUT_CALIB)
        tokens = [t.strip() for t in self.to.split(",") if t.strip()]
        unknown = [t for t in tokens if t not in TOKENS]
        if unknown or not tokens:
            raise InputError(f"--to: unknown output {', '.join(unknown) or '(none)'} (choose from {', '.join(TOKENS)})")
        if not has_calib and EDGETPU in tokens:
            raise InputError(
                "edgetpu needs a fully integer (int8) model, calibrated on sample inputs: "
                "edgekit convert MODEL --to edgetpu --calib DATA (image folder, .npy/.npz or .csv)"
            )
        if not has_calib and (needs := [t for t in tokens if t in NEEDS_CALIB]):
            raise InputError(
                f"{', '.join(needs)} need calibration data: pass --calib (image folder, .npy/.npz or .csv)"
            )
        if EDGETPU in tokens and self.int8_io == "float32":
            raise InputError("--to edgetpu needs integer inputs and outputs: --int8-io int8 or uint8, not float32")
        if EDGETPU in tokens and "tflite:int8" not in tokens:  # the compiler's input
            tokens.insert(tokens.index(EDGETPU), "tflite:int8")
        return list(dict.fromkeys(tokens))

    def shaping(self) -> dict[str, Any]:
        """The settings that shape an artifact's bytes: its cache key, the worker's job, the manifest's settings.

        Example:
            >>> sorted(ConvertSettings().shaping())[:3]
            ['allow_select_tf_ops', 'batch', 'calib_samples']
        """
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_IN_KEY}

"""One typed settings object for ``edgekit optimize``: which passes run, and how they fine-tune.

The passes run in the order prune → cluster → QAT; each has its own config, checked when it is made
(before any data or model is loaded). A new pass is a new config here and a function in
:mod:`edgekit.converters.tfmot_passes`, registered in :data:`PASSES`.

Example:
    >>> s = OptimizeSettings.from_options(prune=0.5, epochs=2)
    >>> list(s.passes()), s.learning_rates()
    (['prune'], {'prune': 0.0003})
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

CLUSTER_INITS = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR", "density": "DENSITY_BASED", "random": "RANDOM"}
# Fine-tuning rates when none is given. QAT starts from a converged model and its fake-quant noise: at 3e-4 one
# seed in three lost 1.8 points on the MobileNet digits model, at 1e-4 none did.
PASS_LEARNING_RATES = {"prune": 3e-4, "cluster": 3e-4, "qat": 1e-4}
PASSES = ("prune", "cluster", "qat")  # in the order they run
# What an optimized model may lose against the model it started from, unless the flags or the recipe's
# ``optimize:`` section say otherwise: accuracy points for classifiers, the MAE's relative increase otherwise.
DEFAULT_BUDGET = {"max_accuracy_drop": 0.02, "max_error_increase": 0.25}
BATCHNORM_POLICIES = ("auto", "adapt", "frozen")  # BatchNorm while pruning: see build.optimize.run_passes


@dataclass
class PruneConfig:
    """Magnitude pruning to ``sparsity`` with a ``polynomial`` (0 → target) or ``constant`` schedule."""

    sparsity: float
    schedule: str = "polynomial"
    structured_2_4: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.sparsity < 1:
            raise InputError(f"--prune: sparsity must be in [0, 1), got {self.sparsity}")
        if self.schedule not in ("polynomial", "constant"):
            raise InputError(f"--prune-schedule must be polynomial or constant, got {self.schedule!r}")


@dataclass
class ClusterConfig:
    """Weight clustering into ``clusters`` centroids (``kmeans++``, ``linear``, ``density`` or ``random`` init)."""

    clusters: int
    init: str = "kmeans++"

    def __post_init__(self) -> None:
        if self.clusters < 2:
            raise InputError(f"--cluster: the number of clusters must be >= 2, got {self.clusters}")
        if self.init not in CLUSTER_INITS:
            raise InputError(f"--cluster-init must be one of {', '.join(CLUSTER_INITS)}, got {self.init!r}")


@dataclass
class QatConfig:
    """Quantization-aware training; ``leave_float`` names layers to keep in float."""

    leave_float: list[str] = field(default_factory=list)


@dataclass
class OptimizeSettings:
    """What ``edgekit optimize`` does: the passes (``prune`` sparsity, ``cluster`` count, ``qat``) and the
    fine-tuning (data, epochs, rate, batch, seed), where it writes (``out``), and how it reads the model
    (``task`` overrides the detected task; ``custom_objects`` is a Python file, as for ``convert``).
    ``batchnorm`` says what BatchNorm does while pruning: ``adapt`` (trains, then statistics re-estimated),
    ``frozen``, or ``auto`` (adapt where re-estimating the statistics keeps the source's validation score).

    Example:
        >>> OptimizeSettings().check()
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: nothing to do: pass --prune SPARSITY, --cluster N and/or --qat
    """

    prune: float | None = None
    prune_schedule: str = "polynomial"
    structured_2_4: bool = False
    cluster: int | None = None
    cluster_init: str = "kmeans++"
    qat: bool = False
    leave_float: list[str] = field(default_factory=list)
    data: str | None = None
    epochs: int = 5
    learning_rate: float | None = None
    batch_size: int = 32
    seed: int = 0
    out: str | None = None
    task: str | None = None
    custom_objects: str | None = None
    max_accuracy_drop: float | None = None
    max_error_increase: float | None = None
    batchnorm: str = "auto"

    @classmethod
    def from_options(cls, **options: Any) -> OptimizeSettings:
        """Settings from keyword arguments (the CLI's options, the API's keywords), checked.

        Example:
            >>> OptimizeSettings.from_options(cluster=16, out=Path("runs/x")).out
            'runs/x'
        """
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(options) - known):
            raise TypeError(f"unknown optimize setting(s): {', '.join(unknown)}")
        given = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
        given["leave_float"] = list(given.get("leave_float") or [])
        return cls(**given).check()

    def check(self) -> OptimizeSettings:
        """Refuse settings no run can use (each pass config checks its own values)."""
        if self.prune is None and self.cluster is None and not self.qat:
            raise InputError("nothing to do: pass --prune SPARSITY, --cluster N and/or --qat")
        if self.epochs < 1:
            raise InputError("--epochs must be >= 1")
        if self.batchnorm not in BATCHNORM_POLICIES:
            raise InputError(f"--batchnorm must be one of {', '.join(BATCHNORM_POLICIES)}, got {self.batchnorm!r}")
        for name in DEFAULT_BUDGET:
            if (value := getattr(self, name)) is not None and not value >= 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        self.passes()
        return self

    def passes(self) -> dict[str, PruneConfig | ClusterConfig | QatConfig]:
        """The requested passes' configs, in the order they run."""
        made: dict[str, PruneConfig | ClusterConfig | QatConfig] = {}
        if self.prune is not None:
            made["prune"] = PruneConfig(self.prune, self.prune_schedule, self.structured_2_4)
        if self.cluster is not None:
            made["cluster"] = ClusterConfig(self.cluster, self.cluster_init)
        if self.qat:
            made["qat"] = QatConfig(list(self.leave_float))
        return made

    def budget(self, recipe: dict[str, Any] | None = None) -> tuple[dict[str, float], dict[str, str]]:
        """The limits the optimized model and its int8 file are held to, and where each came from: the flags,
        else the train run recipe's ``optimize:`` section, else :data:`DEFAULT_BUDGET`.

        Example:
            >>> OptimizeSettings(prune=0.5, max_accuracy_drop=0.05).budget({"max_error_increase": 0.1})
            ({'max_accuracy_drop': 0.05, 'max_error_increase': 0.1}, {'max_accuracy_drop': 'flag', \
'max_error_increase': 'recipe'})
        """
        limits, source = {}, {}
        for name, default in DEFAULT_BUDGET.items():
            flag, kept = getattr(self, name), (recipe or {}).get(name)
            limits[name], source[name] = (
                (flag, "flag") if flag is not None else (kept, "recipe") if kept is not None else (default, "default")
            )
        return limits, source

    def learning_rates(self) -> dict[str, float]:
        """Each requested pass's fine-tuning rate: ``learning_rate``, else the pass's default."""
        return {name: self.learning_rate or PASS_LEARNING_RATES[name] for name in self.passes()}

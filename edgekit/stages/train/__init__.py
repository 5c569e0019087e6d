"""The train stage: a recipe in, a run directory out (:func:`edgekit.stages.train.train`)."""

from edgekit.stages.train.driver import train

__all__ = ["train"]

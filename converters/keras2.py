"""Keras 2 files under Keras 3 (build lane): the config keys Keras 2 wrote that Keras 3 refuses, fixed on load.

Keras 2 (tf.keras, tf_keras) wrote keys into layer configs that Keras 3's layers no longer take, and Keras 3
refuses the whole file for one of them (``Unrecognized keyword arguments passed to DepthwiseConv2D:
{'groups': 1}``): every Keras 2 MobileNet or DS-CNN ``.h5`` hits it. Each key below is dropped only when it holds
the value under which Keras 2 computed exactly what Keras 3 computes without it (``groups=1``,
``time_major=False``, the unused kernel settings of separable convolutions); any other value is left for Keras 3
to refuse. :func:`compat_objects` gives the ``custom_objects`` that apply the fixes, and records each one.

Measured on the Keras 2 layer set (tf_keras 2.21 ``.h5`` → Keras 3.15): DepthwiseConv1D/2D, Conv1D/2DTranspose,
SeparableConv1D/2D (``groups``, kernel settings), LSTM, GRU, SimpleRNN, ConvLSTM2D and Bidirectional
(``time_major``) were refused and load with these fixes.

Example:
    >>> fixes = []
    >>> objects = compat_objects(fixes)
    >>> type(objects["DepthwiseConv2D"].from_config({"kernel_size": 3, "groups": 1})).__name__
    'DepthwiseConv2D'
    >>> fixes
    ["DepthwiseConv2D: dropped Keras 2's groups=1"]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_GROUPS_ONE = {"groups": lambda v: v == 1}
_NOT_TIME_MAJOR = {"time_major": lambda v: v is False}
_SEPARABLE = {**_GROUPS_ONE, **{k: lambda v: True for k in ("kernel_initializer", "kernel_regularizer",
                                                           "kernel_constraint")}}  # fmt: skip
# Keras 3 class → the Keras 2 keys it refuses, each with the values it can be dropped at without changing the model.
KERAS2_KEYS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "DepthwiseConv1D": _GROUPS_ONE,
    "DepthwiseConv2D": _GROUPS_ONE,
    "Conv1DTranspose": _GROUPS_ONE,
    "Conv2DTranspose": _GROUPS_ONE,
    "Conv3DTranspose": _GROUPS_ONE,
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
    "LSTM": _NOT_TIME_MAJOR,
    "GRU": _NOT_TIME_MAJOR,
    "SimpleRNN": _NOT_TIME_MAJOR,
    "ConvLSTM1D": _NOT_TIME_MAJOR,
    "ConvLSTM2D": _NOT_TIME_MAJOR,
    "ConvLSTM3D": _NOT_TIME_MAJOR,
}


def _fixing(cls: type, keys: dict[str, Callable[[Any], bool]], fixes: list[str]) -> type:
    """A stand-in for ``cls`` whose ``from_config`` drops ``keys`` at their harmless values and builds ``cls``."""

    def from_config(_: type, config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        config = dict(config)
        for key, harmless in keys.items():
            if key in config and harmless(config[key]):
                value = config.pop(key)
                shown = f"{key}={value!r}" if not isinstance(value, dict) else key
                fix = f"{cls.__name__}: dropped Keras 2's {shown}"
                if fix not in fixes:
                    fixes.append(fix)
        return cls.from_config(config, *args, **kwargs)

    return type(cls.__name__, (cls,), {"from_config": classmethod(from_config)})


def compat_objects(fixes: list[str]) -> dict[str, type]:
    """``custom_objects`` that load Keras 2 layer configs into Keras 3's own classes, appending to ``fixes`` a
    line per key dropped.

    Example:
        >>> sorted(compat_objects([]))[:2]
        ['Conv1DTranspose', 'Conv2DTranspose']
    """
    import keras

    return {name: _fixing(getattr(keras.layers, name), keys, fixes) for name, keys in KERAS2_KEYS.items()
            if hasattr(keras.layers, name)}  # fmt: skip


def keras2_archive_version(path: Any) -> str | None:
    """The Keras version a ``.keras`` archive says saved it, when that is Keras 2 (tf_keras): Keras 3 cannot read
    its classes (``Could not locate class 'Functional'``).

    Example:
        >>> keras2_archive_version("model.h5") is None
        True
    """
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            version = str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return version if version.startswith("2.") else None

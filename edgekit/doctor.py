"""``edgekit doctor``: what this machine can do, each item available or unavailable with a reason.

Package versions come from installed metadata, so the doctor never imports
TensorFlow (or any converter) to report on it.

Example:
    >>> report = diagnose()
    >>> report["targets"]["cpu"]["available"]
    True
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from edgekit.common.cpu import cpu_features
from edgekit.runtime import targets
from edgekit.runtime.pi import describe_cached

PACKAGES = {
    "runtime": ["numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu"],
    "build": ["tensorflow", "tensorflow-cpu", "keras", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx"],
}


def package_versions() -> dict[str, dict[str, Any]]:
    """Installed version of each runtime and build package, or the reason it is missing.

    Example:
        >>> package_versions()["runtime"]["numpy"]["available"]
        True
    """
    report: dict[str, dict[str, Any]] = {}
    for lane, names in PACKAGES.items():
        report[lane] = {}
        for name in names:
            try:
                report[lane][name] = {"available": True, "version": importlib.metadata.version(name)}
            except importlib.metadata.PackageNotFoundError:
                report[lane][name] = {"available": False, "reason": "not installed"}
    return report


def diagnose() -> dict[str, Any]:
    """Everything ``edgekit doctor`` prints, as a dict.

    Example:
        >>> sorted(diagnose()["targets"])
        ['cpu', 'edgetpu', 'gpu_litert', 'gpu_onnxruntime', 'pi']
    """
    probes = {
        "cpu": targets.cpu(),
        "gpu_litert": targets.litert_gpu(),
        "gpu_onnxruntime": targets.onnxruntime_gpu(),
        "edgetpu": targets.edgetpu_runtime(),
    }
    return {
        "platform": {"system": platform.system(), "machine": platform.machine(), "python": platform.python_version()},
        "packages": package_versions(),
        "cpu_features": cpu_features(),
        "targets": {**{name: _as_dict(a) for name, a in probes.items()}, "pi": describe_cached()},
        "tools": {"edgetpu_compiler": _as_dict(targets.edgetpu_compiler())},
    }


def _as_dict(a: targets.Availability) -> dict[str, Any]:
    d: dict[str, Any] = {"available": a.available}
    d["detail" if a.available else "reason"] = a.detail if a.available else a.reason
    return d

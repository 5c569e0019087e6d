"""The CPU's SIMD features: what decides mixed precision in training and explains latency figures.

Example:
    >>> cpu_features("flags : fpu avx2")["avx2"]
    True
"""

from __future__ import annotations

import platform
from pathlib import Path

CPU_FEATURES = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "amx_bf16": "amx_bf16",
    "neon": "asimd",
}


def cpu_features(cpuinfo: str | None = None) -> dict[str, bool]:
    """Which SIMD features the CPU reports (x86 flags or Arm ``asimd`` = NEON).

    Example:
        >>> cpu_features("flags : fpu avx2 avx512_vnni")["avx512_vnni"]
        True
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if platform.machine().lower() in ("arm64", "aarch64") and not flags:
        flags.add("asimd")  # NEON is mandatory on 64-bit Arm
    return {name: flag in flags for name, flag in CPU_FEATURES.items()}

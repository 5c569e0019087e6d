"""`edgekit doctor` reports what is really installed and available here."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path

from edgekit.common.cpu import cpu_features
from edgekit.runtime import targets
from tests.helpers import run_cli


def test_doctor_json_matches_this_machine():
    res = run_cli("doctor", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["packages"]["runtime"]["ai-edge-litert"] == {
        "available": True,
        "version": importlib.metadata.version("ai-edge-litert"),
    }
    assert r["packages"]["runtime"]["onnxruntime"]["version"] == importlib.metadata.version("onnxruntime")
    assert r["targets"]["cpu"]["available"] is True
    for name, probe in (("edgetpu", targets.edgetpu_runtime()), ("gpu_litert", targets.litert_gpu())):
        assert r["targets"][name]["available"] is probe.available
        if not probe.available:
            assert r["targets"][name]["reason"]
    assert r["tools"]["edgetpu_compiler"]["available"] is targets.edgetpu_compiler().available
    if platform.machine() == "x86_64":
        flags = Path("/proc/cpuinfo").read_text()
        assert r["cpu_features"]["avx2"] is (" avx2" in flags)


def test_cpu_feature_parsing():
    assert cpu_features("flags\t: fpu avx2 avx512_vnni avx512_bf16") == {
        "avx2": True, "avx512f": False, "avx512_vnni": True, "avx512_bf16": True, "amx_bf16": False,
        "neon": platform.machine().lower() in ("arm64", "aarch64"),
    }  # fmt: skip
    assert cpu_features("Features\t: fp asimd evtstrm")["neon"] is True


def test_doctor_table():
    res = run_cli("doctor")
    assert res.returncode == 0
    assert "ai-edge-litert" in res.stdout and ("unavailable" in res.stdout or "available" in res.stdout)

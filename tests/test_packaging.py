"""edgekit as a library (issue 31): the wheel builds, installs into a clean virtual environment that already holds
an older numpy (compatible ranges, not pins), and its runtime lane runs ``inspect`` there without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import venv

import pytest
import tomllib

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def _pinned(name: str) -> str:
    """The version constraints.txt pins for ``name`` (names compared as pip does: case and - / _ aside)."""
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    return {k.lower().replace("_", "-"): v for k, v in pins.items()}[name.lower().replace("_", "-")]


def test_runtime_dependencies_are_ranges_and_constraints_pin_them():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        assert "==" not in requirement, requirement  # a library declares ranges; make pins them in constraints.txt
    names = [r.split(">")[0].split("<")[0].split("[")[0].strip() for r in project["dependencies"]]
    assert "matplotlib" not in names and "tensorflow" not in names  # plotting is the report extra
    assert all(_pinned(name) for name in names)


def test_the_wheel_installs_beside_an_older_numpy_and_inspects_without_tensorflow(coral, tmp_path):
    dist = tmp_path / "dist"
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("edgekit-*.whl")
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python, pip = env / "bin" / "python", [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    major, minor = (int(v) for v in _pinned("numpy").split(".")[:2])
    older = f"numpy=={major}.{minor - 1}.*"  # one minor below the pinned numpy, there first
    for args in ([older], [str(wheel)]):
        r = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (args, r.stderr[-2000:])
    versions = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    assert versions.stdout.startswith(f"{major}.{minor - 1}."), versions.stdout  # kept: the ranges allow it
    model = coral / "mobilenet_v1_0.25_128_quant.tflite"
    r = subprocess.run([str(env / "bin" / "edgekit"), "inspect", str(model), "--json"], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ops_total"] > 0
    probe = "import sys, edgekit; edgekit.inspect_model(sys.argv[1]); import importlib.util as u; "\
        "print(u.find_spec('tensorflow') is None, 'tensorflow' in sys.modules, (u.find_spec('edgekit').submodule_"\
        "search_locations[0] + '/py.typed'))"  # fmt: skip
    r = subprocess.run([str(python), "-c", probe, str(model)], capture_output=True, text=True, timeout=120)
    absent, imported, typed = r.stdout.split()
    assert r.returncode == 0 and absent == "True" and imported == "False", r.stderr
    from pathlib import Path

    assert Path(typed).is_file()

"""The structure the tree promises: two lanes kept apart by lint, stages that never import each other,
one module that names the run directory's files."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EDGEKIT = REPO / "edgekit"
STAGES = ("train", "optimize", "convert", "validate", "bundle")
RUFF = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
BAD_MODULE = "import numpy as np\nimport tensorflow as tf\n\n\ndef f():\n    import keras\n\n    return keras, tf, np\n"


def _ruff(stdin_path: str, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, "check", "--no-cache", "--select", "TID", "--stdin-filename", stdin_path, "-"],
        input=source, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (make install adds it)")
@pytest.mark.parametrize("where", ["edgekit/stages/validate/new.py", "edgekit/runtime/new.py", "examples/new.py"])
def test_lint_refuses_tensorflow_in_the_runtime_lane(where: str) -> None:
    result = _ruff(where, BAD_MODULE)
    assert result.returncode == 1
    assert "TID253 `tensorflow` is banned at the module level" in result.stdout
    assert "TID251 `keras` is banned" in result.stdout  # a lazy import too


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (make install adds it)")
def test_lint_allows_lazy_build_calls_only_where_listed() -> None:
    lazy = "def f():\n    from edgekit.buildlane.train import fit_recipe\n\n    return fit_recipe\n"
    assert _ruff("edgekit/stages/train/driver.py", lazy).returncode == 0  # listed, with its reason
    assert "TID251 `edgekit.buildlane` is banned" in _ruff("edgekit/stages/convert/new.py", lazy).stdout
    top = "from edgekit.buildlane.train import fit_recipe\n\nprint(fit_recipe)\n"
    assert "TID253" in _ruff("edgekit/stages/train/driver.py", top).stdout  # never at module level
    for build_lane in ("converters/new.py", "models/new.py", "edgekit/buildlane/new.py"):
        assert _ruff(build_lane, BAD_MODULE).returncode == 0


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (make install adds it)")
def test_the_tree_is_lint_clean() -> None:
    result = subprocess.run([RUFF, "check", "--no-cache", "."], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_each_other(stage: str) -> None:
    others = re.compile(r"edgekit\.(pipeline|stages\.(?!" + stage + r"\b)\w+)")
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in (EDGEKIT / "stages" / stage).rglob("*.py")
        for name in _imports(path)
        if others.match(name)
    }
    assert not offenders


def test_only_the_pipeline_and_the_front_ends_chain_stages() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in EDGEKIT.rglob("*.py")
        if path.parts[len(EDGEKIT.parts)] not in ("cli", "pipeline.py", "__init__.py")
        for name in _imports(path)
        if name.startswith("edgekit.pipeline")
    }
    assert not offenders


def test_one_module_names_the_run_directory_files() -> None:
    # Code quotes with ", doctest output with ': only code counts.
    names = re.compile(r'"(manifest\.json|model\.keras|calib\.npy|test\.npz|report\.json|job\.json|meta\.json)"')
    spelled = {
        str(path.relative_to(REPO))
        for folder in (EDGEKIT, REPO / "converters", REPO / "models")
        for path in folder.rglob("*.py")
        if path.name != "rundir.py" and any(names.search(line) for line in path.read_text().splitlines()
                                            if ">>>" not in line)
    }  # fmt: skip
    # The validate cell's private hand-off in its own temporary folder is not a run directory.
    assert spelled <= {"edgekit/stages/validate/cell.py"}, spelled

"""The documentation (issue 31): the README stays short and its walk-through runs as written; the docs site
builds with every link resolved."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

README = (REPO / "README.md").read_text()


def test_the_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        assert (REPO / target).exists(), target


def test_the_docs_site_builds_with_every_link_resolved(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(REPO / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("convert", "validate", "bundle", "predict", "keygen", "ConvertSettings"):
        assert name in api, name  # the API reference is generated from the code


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    """The README's "your own Keras model to a device" block, run by bash with the project's environment first on
    PATH, in an empty folder: every command exits 0 and the bundle classifies the test digit as Keras does."""
    block = README.split("<!-- walkthrough -->")[1].split("<!-- /walkthrough -->")[0]
    script = block.split("```bash\n", 1)[1].rsplit("```", 1)[0]
    script = script.replace("edgekit predict bundles/digits digit.png --json",
                            "edgekit predict bundles/digits digit.png --json > predicted.json")  # fmt: skip
    (tmp_path / "walkthrough.sh").write_text(script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run(["bash", "-euo", "pipefail", "walkthrough.sh"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    predicted = json.loads((tmp_path / "predicted.json").read_text())
    import keras
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(tmp_path / "digit.png"), np.float32)[None, :, :, None]
    want = int(np.argmax(keras.models.load_model(tmp_path / "digits.keras")(pixels)))
    assert predicted[0]["top"][0]["label"] == str(want), predicted
    assert "digit.png" in r.stdout  # run.py's line for the photo

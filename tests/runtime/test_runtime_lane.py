"""The runtime lane never imports TensorFlow (nor the converters)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from edgekit.runtime import targets
from tests.helpers import BUILD_LANE, REPO


def test_runtime_commands_do_not_import_tensorflow(coral, tmp_path):
    """inspect, bench, doctor, bundle, predict, verify and the compile-only convert, in one fresh interpreter."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from edgekit.cli import main
        model = {str(coral / "mobilenet_v1_0.25_128_quant.tflite")!r}
        codes = [
            main(["inspect", model, "--json"]),
            main(["inspect", model, "--target", "edgetpu", "--ram-budget", "1M", "--json"]),
            main(["inspect", model, "--target", "gpu", "--json"]),
            main(["bench", model, "--runs", "3", "--json"]),
            main(["bench", model, "--runs", "3", "--target", "gpu", "--json"]),
            main(["doctor", "--json"]),
        ]
        bundle_dir = {str(tmp_path / "bundle")!r}
        photo = {str(coral / "images" / "cat.bmp")!r}
        labels = {str(coral / "imagenet_labels.txt")!r}
        codes += [
            main(["bundle", model, "--platform", "rpi", "--labels", labels, "--out", bundle_dir, "--zip", "--json"]),
            main(["predict", bundle_dir + ".zip", photo, "--json"]),
            main(["verify", bundle_dir, "--json"]),
        ]
        # compile-only convert of a .tflite: exit 3 ("compiler unavailable") where edgetpu_compiler is absent
        codes.append(main(["convert", model, "--to", "edgetpu", "--out", {str(tmp_path / "tpu")!r}, "--json"]))
        import edgekit
        edgekit.load(model).run(__import__("numpy").zeros((1, 128, 128, 3), "uint8"))
        loaded = [m for m in {BUILD_LANE!r} if m in sys.modules]
        sys.stderr.write(json.dumps({{"codes": codes, "loaded": loaded}}) + "\\n")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    compiled = 0 if targets.edgetpu_compiler().available else 3
    assert result == {"codes": [0, 0, 0, 0, 0, 0, 0, 0, 0, compiled], "loaded": []}

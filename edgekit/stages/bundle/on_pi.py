"""A bundle run where it will run: its own ``run.py`` and ``requirements.txt`` on the Pi's software stack.

:mod:`edgekit.runtime.pi` gives the Pi's Python (Debian 12 arm64, natively or under qemu-user). Here the
bundle's ``requirements.txt`` is installed for it (markers evaluated by that Python, wheels chosen for CPython
3.11 aarch64: :func:`~edgekit.runtime.pi.pip_install`) into a clean folder kept per requirements file, and the
bundle's ``run.py`` runs there:
``edgekit predict --target pi`` and ``edgekit verify --target pi`` (which also compares with x86).

Example:
    >>> predict_on_pi(bundle, ["cat.jpg"])[0]["target_used"]  # doctest: +SKIP
    'pi'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.runtime.pi import PiStack, cache_root, pi_stack, pip_install
from edgekit.stages.bundle.loader import OpenBundle


def bundle_site(stack: PiStack, bundle: OpenBundle, source: str | Path) -> Path:
    """The bundle's ``requirements.txt`` installed for the Pi (cached by its sha256); exit 2 when it cannot be.

    Example:
        >>> bundle_site(pi_stack(), bundle, "bundles/cat_rpi").name  # doctest: +SKIP
        '3f0c9d2e11aa5b7c'
    """
    if bundle.folder is None or not (requirements := bundle.folder / "requirements.txt").is_file():
        raise InputError(f"{source}: no requirements.txt: only a Raspberry Pi or Coral bundle runs on the Pi")
    digest = hashlib.sha256(requirements.read_bytes() + stack.checksum.encode()).hexdigest()[:16]
    site = cache_root() / "bundles" / digest
    if (site / ".installed").is_file():
        return site
    site.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{digest}.partial-", dir=site.parent))
    try:
        installed = pip_install(stack, requirements, partial)
        if installed.returncode != 0:
            lines = installed.stderr.splitlines()
            errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
            raise InputError(f"{source}: requirements.txt does not install on the Pi (aarch64, Python "
                             f"{stack.python_version}): {(errors or ['pip failed'])[0][:300]}")  # fmt: skip
        (partial / ".installed").write_text("\n".join(installed.args) + "\n")
        with contextlib.suppress(OSError):  # another process installed it first
            partial.rename(site)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return site


def run_on_pi(bundle: OpenBundle, source: str | Path, inputs: list[Path], extra: list[str] | None = None,
              stack: PiStack | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """``run.py INPUTS --json`` of the bundle on the Pi stack; its results, each marked ``target_used: "pi"``.

    Example:
        >>> run_on_pi(bundle, "b", [Path("cat.bmp")])[0]["emulated"]  # doctest: +SKIP
        True
    """
    stack = stack or pi_stack()
    site = bundle_site(stack, bundle, source)
    assert bundle.folder is not None
    folder = bundle.folder.resolve()  # run.py runs in the bundle: a relative folder would be given twice
    args = [str(folder / "run.py"), *(str(Path(p).resolve()) for p in inputs), "--json", *(extra or [])]
    ran = stack.run(args, site=site, cwd=folder)
    if ran.returncode != 0:
        last = (ran.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"{source}: run.py fails on the Pi (exit {ran.returncode}): {last[:300]}")
    try:
        results = json.loads(ran.stdout)
    except json.JSONDecodeError:
        raise InputError(f"{source}: run.py on the Pi printed no JSON ({ran.stdout[:100]!r})") from None
    for result in results:
        result.update(target_used="pi", emulated=stack.emulated, runtime=stack.describe())
    return results


def sample_input(bundle: OpenBundle, folder: Path) -> Path:
    """A deterministic sample for the bundle's first input, as a ``.npy`` of its shape and dtype (one sample)."""
    item = bundle.manifest["inputs"][0]
    rng = np.random.default_rng(0)
    dtype = np.dtype(item["dtype"])
    if dtype.kind in "iu":
        low, high = (0, 256) if dtype == np.uint8 else (-128, 128)
        values = rng.integers(low, high, item["shape"]).astype(dtype)
    else:
        values = rng.normal(0, 1, item["shape"]).astype(dtype)
    path = folder / "sample.npy"
    np.save(path, values)
    return path


def compare(pi: dict[str, Any], x86: dict[str, Any], manifest: dict[str, Any]) -> tuple[bool, str]:
    """Whether a Pi result agrees with the x86 one, within one quantization step of the output (or 1e-3 of its
    range for a float output), and the figure.

    Example:
        >>> compare({"values": [1.0, 2.0]}, {"values": [1.0, 2.0004]}, {"outputs": [{"quantization": None}],
        ...          "postprocessing": {"output": None}})
        (True, 'max |diff| 0.0004')
    """
    out = next((o for o in manifest["outputs"] if o.get("name") == manifest["postprocessing"]["output"]),
               manifest["outputs"][0])  # fmt: skip
    q = out.get("quantization")
    if "top" in pi:
        a = {t["index"]: t["score"] for t in pi["top"]}
        b = {t["index"]: t["score"] for t in x86["top"]}
        diff = max(abs(a[k] - b.get(k, 0.0)) for k in a)
        same_top = pi["top"][0]["index"] == x86["top"][0]["index"]
        tolerance = 2 * q["scale"] + 1e-6 if q else 1e-3
        return same_top and diff <= tolerance, f"top-1 {'same' if same_top else 'differs'}, max |diff| {diff:.3g}"
    key = next(k for k in ("values", "score", "probability") if k in pi)
    a, b = np.atleast_1d(np.asarray(pi[key], np.float64)), np.atleast_1d(np.asarray(x86[key], np.float64))
    diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
    tolerance = 2 * q["scale"] + 1e-6 if q else 1e-3 * max(float(np.max(np.abs(b))), 1.0)
    return diff <= tolerance, f"max |diff| {diff:.3g}"


def verify_on_pi(bundle: OpenBundle, source: str | Path, x86_predict: Any) -> list[str]:
    """Install the bundle's requirements on the Pi stack, run its ``run.py`` on a sample there, compare with x86
    (``x86_predict(sample_path) -> results``); the check lines, or :class:`InputError` naming what failed."""
    stack = pi_stack()
    with tempfile.TemporaryDirectory(prefix="edgekit-pi-") as tmp:
        sample = sample_input(bundle, Path(tmp))
        on_pi = run_on_pi(bundle, source, [sample], stack=stack)
        on_x86 = x86_predict(sample)
    figures = [compare(p, x, bundle.manifest) for p, x in zip(on_pi, on_x86, strict=True)]
    if not all(ok for ok, _ in figures):
        raise InputError(f"{source}: run.py on the Pi disagrees with x86 on a sample: "
                         f"{next(f for ok, f in figures if not ok)}")  # fmt: skip
    how = "emulated" if stack.emulated else "native"
    return [f"pi: requirements.txt installs ({stack.describe()})",
            f"pi: run.py on a sample agrees with x86 ({how}; {figures[0][1]})"]  # fmt: skip

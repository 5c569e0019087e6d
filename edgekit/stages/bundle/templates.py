"""The platform files of a bundle: ``run.py`` for the Pi and Coral, Kotlin and Swift snippets for apps.

The snippets are written for the bundled model: its file name, its input and output tensor
names and shapes, its preprocessing (size, mean / std, uint8 pixels or quantized values) and
whether its recurrent state must be reset — all from ``edgekit.json``, so a test can check
them against the bundle they ship with.

Example:
    >>> sorted(platform_files("rpi", manifest))  # doctest: +SKIP
    ['README.md', 'requirements.txt', 'run.py']
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

RUNTIME_PACKAGES = ("ai-edge-litert", "numpy", "pillow")


def pinned(package: str) -> str:
    """``package==version`` as installed here (the bare name when it is not)."""
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package


def runtime_requirements() -> list[str]:
    """A Pi / Coral bundle's ``requirements.txt``: this machine's versions, but the ai-edge-litert that runs on a
    Pi's aarch64 Python (``edgekit.runtime.pi.PI_LITERT``; ``verify --target pi`` checks it installs and runs).

    Example:
        >>> runtime_requirements()[1]
        'ai-edge-litert==1.4.0; platform_machine == "aarch64"'
    """
    from edgekit.runtime.pi import PI_LITERT

    litert = pinned("ai-edge-litert")
    return [f'{litert}; platform_machine != "aarch64"', f'ai-edge-litert=={PI_LITERT}; platform_machine == "aarch64"',
            *(pinned(p) for p in RUNTIME_PACKAGES if p != "ai-edge-litert")]  # fmt: skip


def runtime_notes(platform: str, compiled: bool) -> dict[str, Any]:
    """What the device needs to run the bundle (recorded in ``edgekit.json``).

    Example:
        >>> runtime_notes("coral", True)["delegate"]
        'libedgetpu.so.1'
    """
    notes: dict[str, Any] = {
        "rpi": {"interpreter": "ai_edge_litert.interpreter.Interpreter", "threads": 4},
        "coral": {"interpreter": "ai_edge_litert.interpreter.Interpreter", "threads": 4},
        "android": {"interpreter": "org.tensorflow.lite.Interpreter (LiteRT)", "threads": 4},
        "ios": {"interpreter": "TensorFlowLiteSwift Interpreter", "threads": 2},
    }[platform]
    if platform in ("rpi", "coral"):
        notes["python_packages"] = runtime_requirements()
    if compiled:
        notes["delegate"] = "libedgetpu.so.1"
        notes["system_packages"] = ["libedgetpu1-std (Coral's apt repository)"]
    return notes


def platform_files(platform: str, manifest: dict[str, Any]) -> dict[str, bytes]:
    """File name → content of the platform-specific files.

    Example:
        >>> "EdgekitModel.kt" in platform_files("android", manifest)  # doctest: +SKIP
        True
    """
    if platform in ("rpi", "coral"):
        app = (Path(__file__).with_name("app.py")).read_bytes()
        requirements = "\n".join(manifest["runtime"]["python_packages"]) + "\n"
        return {"run.py": app, "requirements.txt": requirements.encode(), "README.md": _readme_pi(manifest).encode()}
    if platform == "android":
        from edgekit.stages.bundle.kotlin import kotlin

        return {"EdgekitModel.kt": kotlin(manifest).encode(), "README.md": _readme_app(manifest, "Android").encode()}
    from edgekit.stages.bundle.swift import swift

    return {"EdgekitModel.swift": swift(manifest).encode(), "README.md": _readme_app(manifest, "iOS").encode()}


def _readme_pi(manifest: dict[str, Any]) -> str:
    compiled = manifest["model"]["edgetpu_compiled"]
    tpu = ("\nThe model is compiled for the Edge TPU: install `libedgetpu1-std` from Coral's apt repository and "
           "plug the Coral in; `run.py` loads `libedgetpu.so.1` as a delegate.\n") if compiled else ""  # fmt: skip
    return f"""# {manifest["model"]["file"]} ({manifest["task"]}) for {manifest["platform"]}

```bash
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/python run.py INPUT...        # images, .npy or .csv; --json for machine-readable output
```
{tpu}
Chosen because: {manifest["model"]["chosen_because"]}.
Everything `run.py` does (resize, scaling, labels, thresholds, state resets) is in `edgekit.json`.
"""


def _readme_app(manifest: dict[str, Any], os_name: str) -> str:
    snippet = "EdgekitModel.kt" if os_name == "Android" else "EdgekitModel.swift"
    where = "app/src/main/assets/" if os_name == "Android" else "the app target (Copy Bundle Resources)"
    shipped = [manifest["model"]["file"], manifest["postprocessing"].get("labels")]
    files = ", ".join(f"`{Path(n).name}`" for n in shipped if n)
    return f"""# {manifest["model"]["file"]} ({manifest["task"]}) for {os_name}

Copy {files} and `edgekit.json` into {where}, and `{snippet}` into your sources.
`{snippet}` does the preprocessing `edgekit.json` describes, maps outputs by tensor name
and {"resets the recurrent state before each call" if manifest["state"]["reset_before_each_call"] else "needs no state handling (the model is stateless)"}.

Chosen because: {manifest["model"]["chosen_because"]}.
"""

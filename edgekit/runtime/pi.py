"""The Raspberry Pi's own software stack, here: Debian 12 arm64's Python 3.11 and the Pi's aarch64 wheels.

A Pi runs Raspberry Pi OS bookworm (Debian 12, 64-bit) with Python 3.11 and the aarch64 wheels of
ai-edge-litert, numpy and Pillow: other builds, other kernels (XNNPACK's NEON paths) and other versions than
this machine's ``.venv`` (see ``PI_LITERT``). :func:`pi_stack` builds that
stack once into a cache, from the package registries only:

1. Debian bookworm's arm64 ``python3.11`` and the libraries it needs (``PI_DEBS``), fetched with ``apt-get``
   in a private state folder (the system's apt configuration is not touched) and unpacked with ``dpkg -x``;
2. on a host that is not aarch64, Debian's ``qemu-user-static`` (the host's architecture), which runs
   those aarch64 programs under user-mode emulation; on an aarch64 host the stack runs natively;
3. the Pi's wheels (``PI_WHEELS``, pinned), installed for aarch64 / CPython 3.11 with pip.

``environment.json`` in the cache records every package's version and sha256 and a checksum of it all
(``edgekit doctor`` shows it). Emulated time is not Pi time: under emulation, edgekit reports what a model
computes there (metrics, agreement), never a latency.

Example:
    >>> stack = pi_stack()  # doctest: +SKIP
    >>> stack.python_version, stack.emulated  # doctest: +SKIP
    ('3.11.2', True)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import TargetUnavailableError

log = logging.getLogger(__name__)

DEBIAN_RELEASE = "bookworm"  # Raspberry Pi OS bookworm is Debian 12
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# python3.11 and its shared libraries (apt-cache depends --recurse, without perl, dpkg, tar and mailcap, which
# Python does not load), plus libstdc++6 / libgcc-s1 for the runtimes' C++ extensions.
PI_DEBS = (
    "gcc-12-base", "libbz2-1.0", "libc6", "libcom-err2", "libcrypt1", "libdb5.3", "libexpat1", "libffi8",
    "libgcc-s1", "libgdbm-compat4", "libgdbm6", "libgssapi-krb5-2", "libk5crypto3", "libkeyutils1", "libkrb5-3",
    "libkrb5support0", "liblzma5", "libncursesw6", "libnsl2", "libpython3.11-minimal", "libpython3.11-stdlib",
    "libreadline8", "libsqlite3-0", "libssl3", "libstdc++6", "libtinfo6", "libtirpc-common", "libtirpc3",
    "libuuid1", "media-types", "python3.11-minimal", "python3.11", "readline-common", "zlib1g",
)  # fmt: skip
# What edgekit runs on the Pi stack: the newest ai-edge-litert with an aarch64 wheel, and edgekit's numpy / Pillow.
# ai-edge-litert 2.3.0 has an aarch64 wheel (manylinux_2_27) that imports but dies with SIGSEGV on its first
# interpreter under qemu-user (cpu max, cortex-a72, cortex-a76, neoverse-n1; measured); 1.4.0 runs. Untested on a
# real Pi (none here): bundles pin 1.4.0 for aarch64 until a device says otherwise.
PI_LITERT = "1.4.0"
PI_WHEELS = (f"ai-edge-litert=={PI_LITERT}", "numpy==2.4.6", "pillow==13.0.0", "cryptography==50.0.2")
PIP_WHEEL = "pip==25.3"  # its packaging evaluates a requirements.txt's markers under the Pi's Python
WHEEL_PLATFORMS = (*(f"manylinux_2_{v}_aarch64" for v in range(36, 16, -1)), "manylinux2014_aarch64")  # glibc 2.36
Progress = Callable[[str], None]


@dataclass(frozen=True)
class PiStack:
    """A built Pi stack: its folder, how to start its Python, and what it holds."""

    root: Path
    emulated: bool
    python_version: str
    packages: dict[str, str]  # wheel name → version
    checksum: str

    @property
    def site(self) -> Path:
        """The folder of the Pi's wheels (``PYTHONPATH``)."""
        return self.root / "site"

    def command(self, *args: str) -> list[str]:
        """The command line that runs the Pi's ``python3.11 ARGS`` (under qemu when emulated).

        Example:
            >>> PiStack(Path("/c"), True, "3.11.2", {}, "").command("-V")[-2:]
            ['/c/sysroot/usr/bin/python3.11', '-V']
        """
        python = str(self.root / "sysroot" / "usr" / "bin" / "python3.11")
        prefix = [str(self.root / "qemu" / "usr" / "bin" / "qemu-aarch64-static"), "-L", str(self.root / "sysroot")]
        return [*(prefix if self.emulated else []), python, *args]

    def run(self, args: Sequence[str], *, site: Path | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run the Pi's Python with ``site`` (default: the stack's wheels) as its only packages.

        Example:
            >>> pi_stack().run(["-c", "import platform; print(platform.machine())"]).stdout  # doctest: +SKIP
            'aarch64\\n'
        """
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site or self.site),
               "PYTHONNOUSERSITE": "1", "HOME": os.environ.get("HOME", "/tmp"), "TF_CPP_MIN_LOG_LEVEL": "2",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"}  # fmt: skip
        return subprocess.run(self.command(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)

    def describe(self) -> str:
        """One line: where it runs and what it holds.

        Example:
            >>> PiStack(Path("/c"), True, "3.11.2", {"ai-edge-litert": "1.4.0"}, "ab").describe()
            'Python 3.11.2 aarch64 (emulated: qemu-user), ai-edge-litert 1.4.0'
        """
        how = "emulated: qemu-user" if self.emulated else "native"
        litert = self.packages.get("ai-edge-litert", "?")
        return f"Python {self.python_version} aarch64 ({how}), ai-edge-litert {litert}"


def host_is_aarch64() -> bool:
    """True on an aarch64 (arm64) host, where the stack runs without emulation."""
    return platform.machine().lower() in ("aarch64", "arm64")


def cache_root() -> Path:
    """Where built stacks live: ``$EDGEKIT_CACHE/pi``, else ``~/.cache/edgekit/pi``."""
    base = os.environ.get("EDGEKIT_CACHE") or Path.home() / ".cache" / "edgekit"
    return Path(base) / "pi"


def stack_key() -> str:
    """What the stack is built from, hashed: a change of a pin builds a new one."""
    spec = json.dumps([DEBIAN_RELEASE, PI_DEBS, PI_WHEELS, PIP_WHEEL, WHEEL_PLATFORMS, host_is_aarch64()])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def cached_stack() -> PiStack | None:
    """The stack built for the current pins, if there is one (builds nothing).

    Example:
        >>> cached_stack() is None or cached_stack().python_version.startswith("3.11")
        True
    """
    record = cache_root() / stack_key() / "environment.json"
    if not record.is_file():
        return None
    data = json.loads(record.read_text())
    return PiStack(record.parent, data["emulated"], data["python_version"], data["packages"], data["checksum"])


def unavailable_reason() -> str | None:
    """Why the stack cannot be built here (None: it can), without building it.

    Example:
        >>> unavailable_reason() is None or "needs" in unavailable_reason()
        True
    """
    if cached_stack() is not None:
        return None
    missing = [tool for tool in ("apt-get", "dpkg") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} (a Debian or Ubuntu host) to fetch Debian 12's arm64 Python"
    return None


def pi_stack(progress: Progress | None = None) -> PiStack:
    """The Pi stack for the current pins, built into the cache on first use.

    Raises :class:`~edgekit.errors.TargetUnavailableError` (``pi unavailable: <reason>``) when it cannot be
    built here: no apt-get / dpkg, or a registry that does not answer.

    Example:
        >>> pi_stack().emulated  # doctest: +SKIP
        True
    """
    if (stack := cached_stack()) is not None:
        return stack
    if why := unavailable_reason():
        raise TargetUnavailableError(f"pi unavailable: {why}")
    root = cache_root() / stack_key()
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{root.name}.partial-", dir=root.parent))
    try:
        _build(work, progress or (lambda message: log.info("%s", message)))
        with contextlib.suppress(FileExistsError, OSError):  # another process built it first
            work.rename(root)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise TargetUnavailableError(f"pi unavailable: building the Pi stack failed ({_last_line(exc)})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stack = cached_stack()
    assert stack is not None
    return stack


def _last_line(exc: BaseException) -> str:
    text = (getattr(exc, "stderr", None) or "").strip() if isinstance(exc, subprocess.CalledProcessError) else ""
    return (text.splitlines() or [str(exc)])[-1][:200]


def _apt_options(work: Path, host: str) -> list[str]:
    """apt-get's options for a private state folder and sources: Debian 12, arm64 (and the host's architecture)."""
    state = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    arches = sorted({"arm64", host})
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    signed = f" signed-by={keyring}" if Path(keyring).is_file() else ""
    (state / "sources.list").write_text("".join(
        f"deb [arch={','.join(arches)}{signed}] {mirror} {suite} main\n"
        for mirror, suite in ((DEBIAN_MIRROR, DEBIAN_RELEASE), (DEBIAN_MIRROR, f"{DEBIAN_RELEASE}-updates"),
                              ("http://deb.debian.org/debian-security", f"{DEBIAN_RELEASE}-security"))
    ))  # fmt: skip
    return [f"-oDir::Etc::SourceList={state / 'sources.list'}", "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}",
            "-oAPT::Architecture=arm64", *(f"-oAPT::Architectures::={a}" for a in arches),
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-qq"]  # fmt: skip


def _build(work: Path, progress: Progress) -> None:
    (work / "debs").mkdir()
    host = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    options = _apt_options(work, host)

    def apt(*args: str) -> None:
        subprocess.run(["apt-get", *options, *args], cwd=work / "debs", capture_output=True, text=True, check=True,
                       timeout=600)  # fmt: skip

    progress(f"pi: fetching Debian {DEBIAN_RELEASE}'s arm64 package index")
    apt("update")
    progress(f"pi: downloading python3.11 and {len(PI_DEBS) - 1} libraries (arm64)")
    apt("download", *PI_DEBS)  # arm64: the private configuration's own architecture
    emulated = not host_is_aarch64()
    if emulated:
        progress("pi: downloading qemu-user-static")
        apt("download", f"qemu-user-static:{host}")
    debs = sorted((work / "debs").glob("*.deb"))
    for deb in debs:
        target = work / ("qemu" if deb.name.startswith("qemu-user-static_") else "sysroot")
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True, capture_output=True, text=True)
    for path in (work / "qemu" / "usr" / "bin").glob("*"):
        if path.name != "qemu-aarch64-static":
            path.unlink()  # the other 30-odd architectures' emulators
    for folder in ("qemu/usr/share", "sysroot/usr/share/doc", "sysroot/usr/share/man", "sysroot/usr/share/locale"):
        shutil.rmtree(work / folder, ignore_errors=True)
    progress(f"pi: installing the Pi's wheels ({', '.join(PI_WHEELS)})")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(work / "pip"), PIP_WHEEL],
                   check=True, capture_output=True, text=True, timeout=600)  # fmt: skip
    subprocess.run([*pip, "install", "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                    *(f"--platform={p}" for p in WHEEL_PLATFORMS), "--target", str(work / "site"), *PI_WHEELS],
                   check=True, capture_output=True, text=True, timeout=1200)  # fmt: skip
    probe = PiStack(work, emulated, "", {}, "")
    version = probe.run(["-c", "import platform, ai_edge_litert.interpreter; print(platform.python_version(), "
                         "platform.machine())"], timeout=300)  # fmt: skip
    if version.returncode != 0 or "aarch64" not in version.stdout:
        raise OSError(f"the Pi's Python does not start: {(version.stderr.strip().splitlines() or ['?'])[-1]}")
    packages = {}
    for info in sorted((work / "site").glob("*.dist-info")):
        name, _, rest = info.name.removesuffix(".dist-info").partition("-")
        packages[name.replace("_", "-").lower()] = rest
    files = {deb.name: hashlib.sha256(deb.read_bytes()).hexdigest() for deb in debs}
    checksum = hashlib.sha256(json.dumps([files, packages], sort_keys=True).encode()).hexdigest()
    record = {"debian": DEBIAN_RELEASE, "emulated": emulated, "python_version": version.stdout.split()[0],
              "packages": packages, "debs": files, "checksum": checksum, "pins": list(PI_WHEELS)}  # fmt: skip
    (work / "environment.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(work / "apt", ignore_errors=True)
    shutil.rmtree(work / "debs", ignore_errors=True)


# Run by the Pi's Python: the requirement lines whose environment markers hold there, markers dropped.
_MARKERS_ON_THE_PI = """
import sys
from pip._vendor.packaging.requirements import Requirement
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split(" #")[0].strip()
    if not line or line.startswith("#"):
        continue
    if line.startswith("-"):
        sys.exit(f"option line {line!r} is not supported here")
    r = Requirement(line)
    if r.marker is None or r.marker.evaluate():
        r.marker = None
        print(r)
"""


def pip_install(stack: PiStack, requirements: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """``pip install -r requirements`` for the Pi into ``target``: the wheels and markers a Pi gets.

    The markers (``platform_machine == "aarch64"``...) are evaluated by the Pi's own Python; the lines that hold
    are installed by this machine's pip for CPython 3.11 on manylinux aarch64 (``WHEEL_PLATFORMS``), wheels
    only, as pip on the Pi would pick them (emulated pip gives the same in about six times the time).

    Example:
        >>> pip_install(pi_stack(), Path("bundle/requirements.txt"), Path("/tmp/site")).returncode  # doctest: +SKIP
        0
    """
    wheel = next((stack.root / "pip").glob("pip-*.whl"))
    kept = stack.run(["-c", _MARKERS_ON_THE_PI, str(requirements)], site=wheel, timeout=600)
    if kept.returncode != 0:
        return kept
    target.mkdir(parents=True, exist_ok=True)
    (target / ".requirements-on-pi.txt").write_text(kept.stdout)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-cache-dir",
           "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
           *(f"--platform={p}" for p in WHEEL_PLATFORMS), "--target", str(target), "-r",
           str(target / ".requirements-on-pi.txt")]  # fmt: skip
    return subprocess.run(pip, capture_output=True, text=True, timeout=1200)


def describe_cached() -> dict[str, Any]:
    """What ``edgekit doctor`` says about the Pi stack (builds nothing).

    Example:
        >>> describe_cached()["available"] in (True, False)
        True
    """
    if (stack := cached_stack()) is not None:
        return {"available": True, "detail": f"{stack.describe()}; built at {stack.root} (checksum "
                                              f"{stack.checksum[:12]})"}  # fmt: skip
    if why := unavailable_reason():
        return {"available": False, "reason": why}
    return {"available": True, "detail": "not built yet: built on first use (Debian 12 arm64 Python 3.11, "
                                         f"{', '.join(PI_WHEELS)}; about 250 MB)"}  # fmt: skip

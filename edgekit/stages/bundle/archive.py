"""Bundle zips: written from a folder, and extracted only when every entry is safe.

An entry with an absolute path, a ``..`` component, a drive letter or a symlink makes the
whole archive refused, with nothing extracted.

Example:
    >>> safe_extract("missing.zip", "out")
    Traceback (most recent call last):
    ...
    edgekit.errors.InputError: missing.zip: no such file
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from edgekit.errors import InputError


def write_zip(folder: Path, archive: Path) -> Path:
    """Zip the files of ``folder`` (relative paths, no symlinks followed) into ``archive``.

    Example:
        >>> write_zip(Path("bundles/rpi"), Path("bundles/rpi.zip"))  # doctest: +SKIP
        PosixPath('bundles/rpi.zip')
    """
    partial = archive.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(folder).as_posix())
    partial.replace(archive)
    return archive


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in parts:
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symlink"
    return None


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract ``archive`` into ``dest`` after checking every entry; refuse the whole zip otherwise.

    Example:
        >>> safe_extract("evil.zip", "/tmp/x")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: evil.zip: entry '../../etc/passwd' has a '..' component: refused, nothing extracted
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise InputError(f"{archive}: no such file")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                if why := _unsafe(info):
                    raise InputError(f"{archive}: entry {info.filename!r} has {why}: refused, nothing extracted")
            dest.mkdir(parents=True, exist_ok=True)
            for info in infos:
                zf.extract(info, dest)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a zip file ({exc})") from None
    return dest

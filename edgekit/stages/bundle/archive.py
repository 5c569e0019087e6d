"""Bundle zips: written from a folder, and extracted only when every entry is safe.

An entry with an absolute path, a ``..`` component, a drive letter or a symlink, a name that
occurs twice, a directory entry named like a file or holding none of them, an encrypted entry, or an archive
over the limits (entries, unpacked bytes, compression ratio) makes the whole archive refused, with nothing
extracted.

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
from edgekit.limits import limit, over


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


def _limits(infos: list[zipfile.ZipInfo]) -> str | None:
    if len(infos) > limit("zip_entries"):
        return over("zip_entries", f"{len(infos)} entries")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        return f"entry {twice[0]!r} twice (which one is the bundle's is ambiguous)"
    if (total := sum(info.file_size for info in infos)) > limit("unpacked_bytes"):
        return over("unpacked_bytes", f"{total:,} bytes unpacked")
    for info in infos:
        if info.flag_bits & 0x1:
            return f"entry {info.filename!r} encrypted"
        ratio = info.file_size // max(info.compress_size, 1)
        if info.file_size > (1 << 20) and ratio > limit("zip_ratio"):
            return over("zip_ratio", f"entry {info.filename!r} compressed {ratio}:1")
    return None


def _clashes(infos: list[zipfile.ZipInfo], files: list[zipfile.ZipInfo]) -> str | None:
    """Directory entries that make the unpacked tree differ from what the listing says: one named like a file
    (``edgekit.json/`` beside ``edgekit.json``), one that holds none of the files."""
    file_names = {info.filename for info in files}
    parents = {str(p) for name in file_names for p in Path(name).parents}
    for info in infos:
        if info.is_dir():
            name = info.filename.rstrip("/")
            if name in file_names:
                return f"directory entry {info.filename!r} is named like the file {name!r}"
            if name not in parents:
                return f"directory entry {info.filename!r} holds none of the listed files"
    return None


def read_entry(archive: str | Path, name: str, limit: int) -> bytes | None:
    """The bytes of entry ``name`` (None when absent), refused over ``limit`` bytes or when the zip is unsafe.

    Example:
        >>> read_entry("bundles/rpi.zip", "edgekit.json", 1 << 20)[:1]  # doctest: +SKIP
        b'{'
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            if why := _limits(zf.infolist()):
                raise InputError(f"{archive}: refused, nothing extracted: {why}")
            if name not in zf.namelist():
                return None
            if (size := zf.getinfo(name).file_size) > limit:
                raise InputError(f"{archive}: entry {name!r} is {size} bytes (the limit is {limit})")
            return zf.read(name)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
        raise InputError(f"{archive}: not a readable zip file ({exc})") from None


def safe_extract(archive: str | Path, dest: str | Path, only: set[str] | None = None) -> Path:
    """Extract ``archive`` into ``dest`` after checking every entry; refuse the whole zip otherwise.

    ``only``: the entry names the archive may hold (any other is refused).

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
            if why := _limits(infos):
                raise InputError(f"{archive}: refused, nothing extracted: {why}")
            files = [info for info in infos if not info.is_dir()]
            if why := _clashes(infos, files):
                raise InputError(f"{archive}: {why}: refused, nothing extracted")
            if only is not None and (extra := sorted(i.filename for i in files if i.filename not in only)):
                raise InputError(f"{archive}: entry {extra[0]!r} is not listed in edgekit.json: refused, "
                                 "nothing extracted")  # fmt: skip
            dest.mkdir(parents=True, exist_ok=True)
            for info in files:
                zf.extract(info, dest)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a zip file ({exc})") from None
    except (NotImplementedError, RuntimeError, OSError, EOFError) as exc:  # compression, password, long names
        raise InputError(f"{archive}: cannot extract it ({exc})") from None
    return dest

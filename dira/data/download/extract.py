"""Unpacking downloaded archives (tar, tar.gz/tgz, zip) without trusting them.

Every member is checked before it is written: a path with ``..``, an absolute path, a Windows drive or a
backslash, a write through a symlink, a symlink or hardlink leading outside the destination, a device file or
a FIFO refuses the whole archive (InputError naming the archive and the member). tarfile's own ``data`` filter
runs as well, but not alone: it differs between Python releases and does not cover zip. The archive is
unpacked into a staging folder beside the destination and merged in only when all of it passed, so a refused
archive leaves the destination as it was; the user's files that are already there are never replaced.
"""

from __future__ import annotations

import filecmp
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from dira.errors import InputError

_DRIVE = re.compile(r"^[A-Za-z]:")
_UNREADABLE = (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile, NotImplementedError,
               RuntimeError)  # RuntimeError: an encrypted zip


def safe_extract(archive: Path, dest: Path, *, progress: bool = False) -> list[str]:
    """Unpack ``archive`` into ``dest`` (created if needed) after checking every member; see the module doc.

    Returns the names the archive put at the top of ``dest``. Files already in ``dest`` are kept: one identical
    to the archive's member is left as it is (a repeated unpacking), one with other content or of another
    type stops the archive before anything is moved.
    """
    archive, dest = Path(archive), Path(dest).resolve()
    if not archive.is_file():
        raise InputError(f"{archive}: archive not found")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would become dest's mode when moved whole
        try:
            if archive_kind(archive) == "zip":
                _extract_zip(archive, staging, progress)
            else:
                _extract_tar(archive, staging, progress)
            _check_links(archive, staging)
        except InputError:
            raise
        except _UNREADABLE as err:
            hint = "; try `7z x` (some LUNA16 zips use a method Python lacks)" if archive_kind(archive) == "zip" else ""
            raise InputError(f"{archive}: cannot unpack ({type(err).__name__}: {err}){hint}") from None
        entries = sorted(os.listdir(staging))
        _merge(archive, staging, dest)
        return entries
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def archive_kind(archive: Path) -> str:
    """'zip' or 'tar' (any compression), from the name, else from the content."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".gz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise InputError(f"{archive}: neither a tar nor a zip archive")


def member_path(archive: Path, name: str, member: str | None = None) -> PurePosixPath | None:
    """``name`` relative to the destination (None for the destination itself), or InputError naming
    ``member`` (default: ``name``) when it could land outside."""
    if name.startswith("/") or "\\" in name or _DRIVE.match(name):
        _refuse(archive, member or name, f"names {name!r}: an absolute path, a Windows drive or a backslash")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        _refuse(archive, member or name, f"names {name!r}, whose '..' could lead outside the destination")
    return PurePosixPath(*parts) if parts else None


def link_target(archive: Path, name: str, rel: PurePosixPath, target: str, links: set[PurePosixPath]) -> None:
    """Refuse a symlink whose target, read from the link's folder, is absolute, leaves the destination or
    goes through another symlink (a later ``..`` would then be resolved from wherever that one points)."""
    if not target or target.startswith("/") or "\\" in target or _DRIVE.match(target):
        _refuse(archive, name, f"is a symlink to {target!r}, an absolute or Windows path, outside the destination")
    walked = PurePosixPath(*rel.parent.parts)
    for part in target.split("/"):
        if walked in links:
            _refuse(archive, name, f"is a symlink through the symlink {walked}")
        if part == "..":
            if not walked.parts:
                _refuse(archive, name, f"is a symlink to {target!r}, outside the destination")
            walked = walked.parent
        elif part not in ("", "."):
            walked = walked / part


def _refuse(archive: Path, member: str, why: str) -> None:
    raise InputError(f"{archive}: member {member!r} {why}; the archive was not unpacked")


def _check_new(archive: Path, name: str, rel: PurePosixPath, links: set[PurePosixPath]) -> None:
    """Nothing may be written through a symlink, nor over one (the write would follow it)."""
    for parent in rel.parents:
        if parent in links:
            _refuse(archive, name, f"would be written through the symlink {parent}")
    if rel in links:
        _refuse(archive, name, "would be written over an earlier symlink member")


def _extract_tar(archive: Path, staging: Path, progress: bool) -> None:
    links: set[PurePosixPath] = set()
    files: set[PurePosixPath] = set()
    seen: set[PurePosixPath] = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tqdm(tar, desc=f"unpack {archive.name}", unit="file", disable=not progress, leave=False):
            rel = member_path(archive, member.name)
            if rel is None:
                continue
            _check_new(archive, member.name, rel, links)
            if member.issym():
                if rel in seen:
                    _refuse(archive, member.name, "is a symlink over an earlier member of the same name")
                link_target(archive, member.name, rel, member.linkname, links)
                links.add(rel)
            elif member.islnk():
                target = member_path(archive, member.linkname, member.name)
                if target not in files:
                    _refuse(archive, member.name, f"is a hardlink to {member.linkname!r}, not to an earlier "
                                                  "regular file of the archive")
            elif member.isreg():
                files.add(rel)
            elif not member.isdir():
                _refuse(archive, member.name, "is a device file, FIFO or other special file")
            seen.add(rel)
            if member.isdir():
                (staging / rel).mkdir(parents=True, exist_ok=True)  # its mode could forbid writing its files
            else:
                member.name = str(rel)  # normalised: './x' and 'x' are one path
                if member.islnk():
                    member.linkname = str(member_path(archive, member.linkname, member.name))
                tar.extract(member, staging, filter="data")


def _extract_zip(archive: Path, staging: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # all checks first: zip has a directory, so refuse before writing anything
            rel = member_path(archive, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if kind == stat.S_IFLNK:
                target = zf.read(info).decode("utf-8", "replace")
                if rel is not None:
                    link_target(archive, info.filename, rel, target, set())
                _refuse(archive, info.filename, f"is a symlink (to {target!r}); symlinks in zip files are not "
                                                "supported")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                _refuse(archive, info.filename, "is a device file, FIFO or other special file")
        for info in tqdm(infos, desc=f"unpack {archive.name}", unit="file", disable=not progress, leave=False):
            rel = member_path(archive, info.filename)
            if rel is None:
                continue
            target = staging / rel
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _check_links(archive: Path, staging: Path) -> None:
    """After unpacking: every symlink, followed to the end of its chain, still lands inside."""
    root = os.path.realpath(staging)
    for folder, dirs, files in os.walk(staging):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and os.path.commonpath([root, os.path.realpath(path)]) != root:
                member = posixpath.relpath(path, staging).replace(os.sep, "/")
                _refuse(archive, member, f"is a symlink chain to {os.readlink(path)!r} leading outside the "
                                         "destination")


def _merge(archive: Path, staging: Path, dest: Path) -> None:
    """Move the staged tree into ``dest``; any real conflict stops it before the first move."""
    clash = next(_conflicts(staging, dest), None)
    if clash is not None:
        raise InputError(f"{archive}: {clash} already exists with other content (or another type) than in the "
                         "archive; move it away and unpack again. Nothing was changed")
    _move_tree(staging, dest)


def _conflicts(src: Path, dst: Path) -> Iterator[Path]:
    if not os.path.lexists(dst):
        return
    if not dst.is_dir():
        yield dst
        return
    for entry in os.scandir(src):
        target = dst / entry.name
        if not os.path.lexists(target):
            continue
        if entry.is_symlink():
            if not (target.is_symlink() and os.readlink(target) == os.readlink(entry.path)):
                yield target
        elif entry.is_dir():
            yield from _conflicts(Path(entry.path), target)
        elif target.is_symlink() or not target.is_file() or not filecmp.cmp(entry.path, target, shallow=False):
            yield target


def _move_tree(src: Path, dst: Path) -> None:
    if not os.path.lexists(dst):
        shutil.move(src, dst)  # a rename on the same file system: the whole tree at once
        return
    for entry in os.scandir(src):
        target = dst / entry.name
        if not os.path.lexists(target):
            shutil.move(entry.path, target)
        elif entry.is_dir(follow_symlinks=False):
            _move_tree(Path(entry.path), target)
        # else: an identical file is already there (checked by _conflicts): the user's copy stays


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

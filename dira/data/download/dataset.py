"""Putting a dataset in place under its root: download, verify, unpack, check the layout.

Archives are kept in ``<root>/downloads/`` and unpacked into the root, so that the root ends up with the
release's own layout (what the readers in ``dira.data.sources`` expect). Sets that need a registration get
no download, only a check that says what is missing and the steps a person must take.

Mirrors and tests: ``base_url=`` or the environment variable ``DIRA_DOWNLOAD_BASE_URL`` replace every
catalog URL by ``<base_url>/<dataset>/<file name>`` (e.g. ``http://127.0.0.1:8000/chestxray14/images_001.tar.gz``),
with the catalog's sizes and md5s still checked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from itertools import islice
from pathlib import Path

from dira.data.download.catalog import Dataset, RemoteFile, dataset
from dira.data.download.extract import safe_extract
from dira.data.download.http import fetch
from dira.data.download.verify import verify
from dira.errors import InputError
from dira.io import atomic_path, write_json

log = logging.getLogger(__name__)

BASE_URL_ENV = "DIRA_DOWNLOAD_BASE_URL"
DOWNLOADS = "downloads"


def download_dataset(name: str, root: Path, *, files: list[str] | None = None, extract: bool = True,
                     base_url: str | None = None, downloads: Path | None = None,
                     catalog: dict[str, Dataset] | None = None, progress: bool = True) -> None:
    """Download, verify and unpack the catalog files of ``name`` so that ``root`` holds the dataset.

    ``files`` picks some of the catalog's file names (default: all, and then the layout is checked at the
    end); ``extract=False`` only downloads. Files already downloaded and checked are not fetched again;
    archives already unpacked (a stamp in the downloads folder) are not unpacked again. A dataset with
    nothing to download is only checked: InputError with the steps to obtain it when it is not in place.
    """
    entry, root = dataset(name, catalog), Path(root)
    if not entry.files:
        check_layout(name, root, catalog=catalog)
        return
    downloads = Path(downloads) if downloads is not None else root / DOWNLOADS
    for file in select_files(entry, files):
        path = _download(file, downloads, base_url, progress)
        if not extract:
            continue
        if file.is_archive:
            _unpack_once(path, root, progress)
        else:
            _place(path, root / file.name)
    if files is None and extract:
        check_layout(name, root, catalog=catalog)


def check_layout(name: str, root: Path, *, catalog: dict[str, Dataset] | None = None) -> None:
    """Return quietly when ``root`` holds the layout of ``name``; else InputError listing what is missing and
    the steps to obtain the dataset."""
    entry, root = dataset(name, catalog), Path(root)
    missing = missing_paths(entry, root)
    if missing:
        raise InputError(layout_message(entry, root, missing))


def missing_paths(entry: Dataset, root: Path) -> list[str]:
    """The layout paths absent from ``root``, relative to it: none when the root, or one of its ``also_under``
    folders, holds them all; else those missing where the fewest are (the root itself on a tie)."""
    candidates = [[Path(sub, p).as_posix() for p in entry.layout if not (root / sub / p).exists()]
                  for sub in ("", *entry.also_under)]
    return min(candidates, key=len)


def layout_message(entry: Dataset, root: Path, missing: list[str]) -> str:
    lines = [f"{root}: {entry.title} ({entry.name}) is not in place: missing {', '.join(missing)}"]
    elsewhere = _found_below(entry, root)
    if elsewhere is not None:
        lines.append(f"Its layout is in {elsewhere}: use that folder as the root.")
    if entry.access == "unavailable":
        lines.append("This dataset cannot be downloaded.")
    lines += ["To obtain it:", entry.steps.replace("{root}", str(root))]
    return "\n".join(lines)


def _found_below(entry: Dataset, root: Path) -> Path | None:
    """A subfolder of ``root`` that holds the layout (a common mistake: the root is one level too high)."""
    if not root.is_dir():
        return None
    for child in sorted(islice(root.iterdir(), 1000)):
        if child.is_dir() and all((child / p).exists() for p in entry.layout):
            return child
    return None


def select_files(entry: Dataset, names: list[str] | None) -> list[RemoteFile]:
    """The catalog files of ``entry`` called ``names`` (their aliases too), in the catalog's order."""
    if names is None:
        return list(entry.files)
    by_name = {alias: f for f in entry.files for alias in (f.name, *f.also_named)}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"{entry.name}: no file {', '.join(map(repr, unknown))} in the catalog; known: "
                         f"{', '.join(f.name for f in entry.files)}")
    wanted = {by_name[n].name for n in names}
    return [f for f in entry.files if f.name in wanted]


def source_url(file: RemoteFile, base_url: str | None = None) -> str:
    """The catalog URL, or ``<base>/<dataset>/<name>`` under ``base_url`` / $DIRA_DOWNLOAD_BASE_URL."""
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV, "")
    return f"{base.rstrip('/')}/{file.dataset}/{file.name}" if base else file.url


def _download(file: RemoteFile, downloads: Path, base_url: str | None, progress: bool) -> Path:
    """The checked local copy of ``file``: one already there (also under an alias) or a fresh download."""
    dest = downloads / file.name
    for alias in file.also_named:
        if not dest.exists() and (downloads / alias).exists():
            if not _stamp_valid(downloads / alias):
                verify(downloads / alias, md5=file.md5, size=file.size)
            return downloads / alias
    if dest.exists() and _stamp_valid(dest):
        return dest  # checked and unpacked by an earlier run, unchanged since
    fetch(source_url(file, base_url), dest, expected_size=file.size, md5=file.md5, progress=progress)
    return dest


def _stamp(archive: Path) -> Path:
    return archive.with_name(f".{archive.name}.unpacked.json")


def _stamp_valid(archive: Path, root: Path | None = None) -> bool:
    """The archive is unchanged since it was checked and unpacked, and what it unpacked is still there."""
    try:
        stamp = json.loads(_stamp(archive).read_text())
        stat = archive.stat()
        unpacked_into, entries = Path(stamp["root"]), list(stamp["entries"])
    except (OSError, ValueError, KeyError, TypeError):  # no stamp, or not one of ours
        return False
    if root is not None and unpacked_into != root.resolve():
        return False
    return (stamp.get("size"), stamp.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns) and all(
        (unpacked_into / top).exists() for top in entries)


def _unpack_once(archive: Path, root: Path, progress: bool) -> None:
    if _stamp_valid(archive, root):
        log.info("%s: already unpacked into %s", archive.name, root)
        return
    entries = safe_extract(archive, root, progress=progress)
    stat = archive.stat()
    write_json(_stamp(archive), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "root": str(root.resolve()),
                                 "entries": entries})


def _place(path: Path, target: Path) -> None:
    """Copy a plain downloaded file into the root, never over a file the user already has there."""
    if target.exists():
        if target.stat().st_size != path.stat().st_size:
            log.warning("%s: kept the existing file, which differs in size from the download %s", target, path)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(path, tmp)

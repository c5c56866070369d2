"""Where each dataset comes from: the packaged ``sources.csv`` (one row per downloadable file) and
``datasets.yaml`` (per dataset: access, the layout that marks it as in place, the human steps to get it).

Keeping URLs, sizes and checksums in data files, not code, lets them be reviewed and corrected without touching
the download logic. ChestX-ray14's tarballs are named as the server sends them (``images_001.tar.gz``); the
name the official ``batch_download_zips.py`` uses (``images_01.tar.gz``) is kept as an alias, so files fetched
with that script are recognised.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dira.errors import InputError

SOURCES_CSV = "sources.csv"
DATASETS_YAML = "datasets.yaml"
SOURCE_COLUMNS = ["dataset", "file", "url", "size", "md5", "also_named"]
ACCESS = ("public", "manual", "unavailable")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file; ``size`` and ``md5`` are None where no trustworthy value is published."""

    dataset: str
    name: str  # the name it is saved under in the downloads folder
    url: str
    size: int | None = None
    md5: str | None = None
    also_named: tuple[str, ...] = ()  # other names the same file is commonly saved under

    @property
    def is_archive(self) -> bool:
        return self.name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    access: str  # one of ACCESS
    layout: tuple[str, ...]  # relative to the root: present == the dataset is in place
    steps: str  # how a person obtains it; "{root}" stands for the dataset's root
    also_under: tuple[str, ...] = ()  # subfolders of the root where the readers also look
    files: tuple[RemoteFile, ...] = ()


def load_catalog(sources_csv: str | None = None, datasets_yaml: str | None = None) -> dict[str, Dataset]:
    """The catalog from the packaged files, or from the given texts in the same formats (for tests)."""
    if sources_csv is None and datasets_yaml is None:
        return _packaged()
    return _build(sources_csv if sources_csv is not None else _read(SOURCES_CSV),
                  datasets_yaml if datasets_yaml is not None else _read(DATASETS_YAML))


def dataset(name: str, catalog: dict[str, Dataset] | None = None) -> Dataset:
    """The catalog entry ``name``; an unknown name is an InputError listing the known ones."""
    catalog = catalog if catalog is not None else load_catalog()
    if name not in catalog:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(catalog)}")
    return catalog[name]


@cache
def _packaged() -> dict[str, Dataset]:
    return _build(_read(SOURCES_CSV), _read(DATASETS_YAML))


def _read(name: str) -> str:
    return resources.files("dira.data.download").joinpath(name).read_text(encoding="utf-8")


def _build(sources_csv: str, datasets_yaml: str) -> dict[str, Dataset]:
    files = parse_sources(sources_csv)
    entries = yaml.safe_load(datasets_yaml)
    if not isinstance(entries, dict):
        raise InputError(f"{DATASETS_YAML}: expected a mapping of dataset name -> entry")
    unknown = sorted({f.dataset for f in files} - set(entries))
    if unknown:
        raise InputError(f"{SOURCES_CSV}: files of dataset(s) {', '.join(unknown)} not described in {DATASETS_YAML}")
    return {name: _dataset(name, entry, tuple(f for f in files if f.dataset == name))
            for name, entry in entries.items()}


def _dataset(name: str, entry: Any, files: tuple[RemoteFile, ...]) -> Dataset:
    where = f"{DATASETS_YAML}: dataset {name!r}"
    if not isinstance(entry, dict) or not {"title", "access", "layout", "steps"} <= set(entry):
        raise InputError(f"{where}: needs title, access, layout and steps")
    if entry["access"] not in ACCESS:
        raise InputError(f"{where}: access {entry['access']!r} is not one of {', '.join(ACCESS)}")
    layout = tuple(str(p) for p in entry["layout"])
    if not layout or any(Path(p).is_absolute() or ".." in Path(p).parts for p in layout):
        raise InputError(f"{where}: layout must list relative paths inside the root")
    if entry["access"] == "public" and not files:
        raise InputError(f"{where}: public, but {SOURCES_CSV} lists no file of it")
    return Dataset(name=name, title=str(entry["title"]), access=entry["access"], layout=layout,
                   steps=str(entry["steps"]).strip(), also_under=tuple(entry.get("also_under") or ()), files=files)


def parse_sources(text: str) -> list[RemoteFile]:
    """Rows of ``sources.csv``, checked: known columns, integer sizes, 32-hex md5s, unique names per dataset."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != SOURCE_COLUMNS:
        raise InputError(f"{SOURCES_CSV}: columns {reader.fieldnames}, expected {SOURCE_COLUMNS}")
    files, seen = [], set()
    for line, row in enumerate(reader, start=2):
        where = f"{SOURCES_CSV} line {line}"
        if not row["url"].startswith(("http://", "https://")):
            raise InputError(f"{where}: URL {row['url']!r} is not http(s)")
        if row["size"] and not row["size"].isdigit():
            raise InputError(f"{where}: size {row['size']!r} is not a byte count")
        md5 = row["md5"].lower()
        if md5 and not _MD5.fullmatch(md5):
            raise InputError(f"{where}: md5 {row['md5']!r} is not 32 hex digits")
        if (row["dataset"], row["file"]) in seen or "/" in row["file"] or not row["file"]:
            raise InputError(f"{where}: file name {row['file']!r} is empty, a path or listed twice")
        seen.add((row["dataset"], row["file"]))
        files.append(RemoteFile(dataset=row["dataset"], name=row["file"], url=row["url"],
                                size=int(row["size"]) if row["size"] else None, md5=md5 or None,
                                also_named=tuple(n for n in row["also_named"].split(";") if n)))
    return files

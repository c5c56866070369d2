"""Reader of LUNA16 as released: ``subset0``–``subset9`` of MetaImage scans, nodule annotations, candidates.

``subsetK/<seriesuid>.mhd`` + ``.raw`` hold int16 HU volumes; ``annotations.csv`` (seriesuid, coordX,
coordY, coordZ, diameter_mm) lists the nodules and ``candidates_V2/candidates_V2.csv`` (the same, with
``class`` 0/1 for diameter) the points for false-positive reduction. Coordinates are world mm (x, y, z),
so a point reaches its voxel only through the scan's geometry, direction matrix included
(:mod:`dira.data.volumes.geometry`); :func:`locate` does that and rejects a point outside its scan.
Indexing reads only the CSVs and lists the folders; scans are read one at a time, checked first
(:mod:`dira.data.volumes.metaimage`). Every error names the file, and the CSV line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.data.volumes.geometry import Geometry, inside, world_to_index
from dira.data.volumes.metaimage import read_geometry, read_volume
from dira.errors import InputError

SUBSETS = tuple(range(10))
ANNOTATIONS = "annotations.csv"
CANDIDATES = "candidates_V2/candidates_V2.csv"
COORDINATES = ("coordX", "coordY", "coordZ")
ANNOTATION_COLUMNS = ("seriesuid", *COORDINATES, "diameter_mm")
CANDIDATE_COLUMNS = ("seriesuid", *COORDINATES, "class")
SERIES_PREFIX = "1.3.6.1.4.1.14519.5.2.1.6279.6001."  # LIDC-IDRI's SeriesInstanceUID root


def subset_folder(subset: int) -> str:
    return f"subset{subset}"


@dataclass(frozen=True)
class Scan:
    seriesuid: str
    subset: int
    header: Path  # subsetK/<seriesuid>.mhd; its data file is named inside it


@dataclass(frozen=True)
class Points:
    """One scan's rows of a CSV, in file order."""

    file: Path
    world: np.ndarray  # (N, 3) float64 mm, x y z
    value: np.ndarray  # (N,) diameter_mm (float64) for annotations, class (int64, 0/1) for candidates
    line: np.ndarray  # (N,) int64 line of each row in ``file`` (the header is line 1)

    def __len__(self) -> int:
        return len(self.line)


@dataclass(frozen=True)
class Luna16Index:
    root: Path
    subsets: tuple[int, ...]  # the subsets indexed
    scans: dict[str, Scan]  # by seriesuid, sorted
    annotations: dict[str, Points]  # by seriesuid; scans without nodules have none
    candidates: dict[str, Points]
    dropped_rows: int  # CSV rows of scans outside the indexed subsets (0 when all ten are indexed)
    synthetic: dict[str, Any] | None  # the synthetic writer's marker; None for the real set

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"

    def scan_annotations(self, seriesuid: str) -> Points:
        return self.annotations.get(seriesuid) or _no_points(self.root / ANNOTATIONS, np.float64)

    def scan_candidates(self, seriesuid: str) -> Points:
        return self.candidates.get(seriesuid) or _no_points(self.root / CANDIDATES, np.int64)


def _no_points(file: Path, dtype: type) -> Points:
    return Points(file, np.zeros((0, 3)), np.zeros(0, dtype), np.zeros(0, np.int64))


def read_luna16(root: Path, subsets: Sequence[int] | None = None) -> Luna16Index:
    """Index the scans of ``subsets`` (all ten when None) under ``root`` with their annotations and candidates.

    With all ten subsets (the release), every CSV row must name a scan. With a partial download, rows of
    scans outside the given subsets are dropped and counted (a scan's subset is known only from its folder).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: LUNA16 folder not found")
    strict = subsets is None
    chosen = SUBSETS if subsets is None else tuple(sorted({int(k) for k in subsets}))
    if not chosen or not set(chosen) <= set(SUBSETS):
        raise InputError(f"LUNA16 subsets must be among 0-9, got {list(subsets or [])}")
    scans = _list_scans(root, chosen)
    annotations, dropped_a = _read_points(root / ANNOTATIONS, ANNOTATION_COLUMNS, scans, strict)
    candidates, dropped_c = _read_points(root / CANDIDATES, CANDIDATE_COLUMNS, scans, strict)
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return Luna16Index(root, chosen, scans, annotations, candidates, dropped_a + dropped_c, synthetic)


def _list_scans(root: Path, subsets: tuple[int, ...]) -> dict[str, Scan]:
    scans: dict[str, Scan] = {}
    for subset in subsets:
        folder = root / subset_folder(subset)
        if not folder.is_dir():
            raise InputError(f"{folder}: LUNA16 subset folder not found (extract {subset_folder(subset)}.zip here)")
        for header in sorted(folder.glob("*.mhd")):
            uid = header.stem
            if uid in scans:
                raise InputError(f"{header}: seriesuid {uid} is also in {scans[uid].header}")
            scans[uid] = Scan(uid, subset, header)
    if not scans:
        raise InputError(f"{root}: no .mhd scans in {', '.join(subset_folder(k) for k in subsets)}")
    return dict(sorted(scans.items()))


def _read_points(path: Path, columns: tuple[str, ...], scans: dict[str, Scan],
                 strict: bool) -> tuple[dict[str, Points], int]:
    """The CSV's rows grouped by scan, every value checked; InputError naming the file and line."""
    if not path.is_file():
        raise InputError(f"{path}: LUNA16 CSV not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                            skip_blank_lines=False)  # so that row r is line r + 2
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: unreadable CSV ({str(err).strip()})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(table.columns)}"
                         f" (expected {','.join(columns)})")
    lines = np.arange(len(table), dtype=np.int64) + 2
    uids = table["seriesuid"].str.strip().to_numpy()
    values = {}
    for column in columns[1:]:
        numbers = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)  # spaces allowed
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(f"{path}: line {lines[row]}: {column} {table[column].iloc[row]!r} is not a number")
        values[column] = numbers
    value_column = columns[-1]
    if value_column == "class":
        bad = (values["class"] != 0) & (values["class"] != 1)
        what = "class must be 0 or 1"
    else:
        bad = values[value_column] <= 0
        what = f"{value_column} must be positive"
    empty = uids == ""
    if bad.any() or empty.any():
        row = int(np.argmax(bad | empty))
        problem = "empty seriesuid" if empty[row] else f"{what}, got {table[value_column].iloc[row]!r}"
        raise InputError(f"{path}: line {lines[row]}: {problem}")
    known = pd.Series(uids).isin(scans.keys()).to_numpy()  # hashed: np.isin sorts 755k strings
    if strict and not known.all():
        row = int(np.argmax(~known))
        raise InputError(f"{path}: line {lines[row]}: seriesuid {uids[row]} has no scan in any subset folder")
    world = np.stack([values[c] for c in COORDINATES], axis=1)
    value = values[value_column].astype(np.int64) if value_column == "class" else values[value_column]
    rows_of = pd.Index(np.flatnonzero(known)).groupby(uids[known]) if known.any() else {}
    groups = {str(uid): Points(path, world[np.asarray(rows)], value[np.asarray(rows)], lines[np.asarray(rows)])
              for uid, rows in sorted(rows_of.items())}  # rows in file order within each scan
    return groups, int((~known).sum())


def read_scan(scan: Scan) -> tuple[np.ndarray, Geometry]:
    """The scan's int16 HU volume (z, y, x) and geometry; its files are checked before SimpleITK reads them."""
    return read_volume(scan.header, np.int16)


def read_scan_geometry(scan: Scan) -> Geometry:
    """The scan's geometry from its header (the data file's size is checked too), without reading voxels."""
    return read_geometry(scan.header)


def locate(points: Points, geometry: Geometry, seriesuid: str) -> np.ndarray:
    """Continuous voxel indices (N, 3), (i, j, k) order, of ``points`` in a scan; InputError naming the CSV
    line of the first point outside the volume (beyond the outer voxels' half-width)."""
    index = world_to_index(geometry, points.world)
    outside = ~inside(geometry, index)
    if outside.any():
        row = int(np.argmax(outside))
        x, y, z = points.world[row]
        i, j, k = index[row]
        raise InputError(f"{points.file}: line {points.line[row]}: point ({x:g}, {y:g}, {z:g}) mm lies outside "
                         f"scan {seriesuid} (voxel index ({i:.1f}, {j:.1f}, {k:.1f}), size {geometry.size})")
    return index

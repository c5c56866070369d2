"""Readers of the two pulmonary-embolism CTPA sets: the public CAD-PE and, for those who hold it, PE-CAD.

DiRA's ECC task uses PE-CAD (Liang's group: 121 CTPA, 326 emboli, tobogganing candidates), which is private;
the public CAD-PE stands in for it.

**CAD-PE** (https://ieee-dataport.org/open-access/cad-pe) ships ``NNN.nrrd`` (CT, HU) beside
``NNNRefStd.nrrd`` (the binary reference mask of the emboli). Accepted layouts: both kinds in ``root``, or
the CTs in ``root/images`` and the masks in ``root/masks`` (nothing else). Every CT needs its mask and the
mask must share its grid (size, origin, spacing, direction), else InputError naming both files; a mask holds 0
and one positive value (1, or e.g. 255).

**PE-CAD** is read when ``pe_cad.splits_dir`` is set (relative paths are under ``root``): a folder of Models
Genesis' published split files ``{train,val,test}_cv-{1,2,3}.csv`` (header ``FileName``, ids such as
``Patient21108``); ``pe_cad.candidates``, a CSV the user supplies with columns ``patient`` (an id of the
split files), ``x``, ``y``, ``z`` (world LPS mm, as ITK reports it) and ``label`` (1 = embolus, 0 = not);
and ``pe_cad.scans_dir`` holding ``<patient>.nrrd``, ``<patient>.nhdr`` or ``<patient>.mhd`` per patient,
read with SimpleITK. Candidate rows of patients in none of the fold's splits are dropped.

With neither present the readers raise :class:`PEUnavailable` (an InputError), which the workflow turns into
a skip of the PE task. Volumes are read with SimpleITK and keep their geometry
(:class:`dira.data.volumes.geometry.Geometry`); arrays are (z, y, x).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.data.volumes.geometry import Geometry, inside, world_to_index
from dira.errors import InputError

CAD_PE_URL = "https://ieee-dataport.org/open-access/cad-pe"
MASK_SUFFIX = "RefStd"
IMAGE_NAME = re.compile(r"^(\d+)\.nrrd$")
MASK_NAME = re.compile(r"^(\d+)RefStd\.nrrd$")
SPLIT_NAMES = ("train", "val", "test")
FOLDS = (1, 2, 3)
SPLIT_COLUMN = "FileName"
CANDIDATE_COLUMNS = ("patient", "x", "y", "z", "label")
SCAN_SUFFIXES = (".nrrd", ".nhdr", ".mhd")


class PEUnavailable(InputError):
    """Neither PE set is under the root: the PE task cannot run and is skipped."""


def unavailable(root: Path) -> PEUnavailable:
    return PEUnavailable(
        f"{root}: no pulmonary-embolism data. PE-CAD, the paper's set, is private (Liang's group) and cannot be "
        f"downloaded; the public CAD-PE is at {CAD_PE_URL} (NNN.nrrd + NNNRefStd.nrrd). The PE task is skipped.")


@dataclass(frozen=True)
class CadPeCase:
    id: str  # the scan number as named, e.g. "001"
    image: Path
    mask: Path

    @property
    def file(self) -> Path:
        return self.image


@dataclass(frozen=True)
class CadPeIndex:
    root: Path
    cases: dict[str, CadPeCase]  # by id, sorted
    synthetic: dict[str, Any] | None

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"


def _marker(root: Path) -> dict[str, Any] | None:
    marker = root / SYNTHETIC_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def find_cad_pe(root: Path) -> tuple[Path, Path] | None:
    """(image folder, mask folder) of a CAD-PE layout under ``root``, or None when there is none."""
    root = Path(root)
    for images, masks in ((root, root), (root / "images", root / "masks")):
        if images.is_dir() and any(IMAGE_NAME.match(p.name) for p in images.iterdir()):
            return images, masks
    return None


def read_cad_pe(root: Path) -> CadPeIndex:
    """Index CAD-PE under ``root``: every ``NNN.nrrd`` paired with its ``NNNRefStd.nrrd``."""
    root = Path(root)
    folders = find_cad_pe(root) if root.is_dir() else None
    if folders is None:
        raise unavailable(root)
    images_dir, masks_dir = folders
    images = {IMAGE_NAME.match(p.name).group(1): p for p in sorted(images_dir.iterdir()) if IMAGE_NAME.match(p.name)}
    masks = {MASK_NAME.match(p.name).group(1): p for p in sorted(masks_dir.iterdir()) if MASK_NAME.match(p.name)}
    for case, image in images.items():
        if case not in masks:
            raise InputError(f"{image}: no reference mask {masks_dir / (case + MASK_SUFFIX + '.nrrd')}")
    for case, mask in masks.items():
        if case not in images:
            raise InputError(f"{mask}: reference mask without its CT {images_dir / (case + '.nrrd')}")
    cases = {case: CadPeCase(case, images[case], masks[case]) for case in sorted(images)}
    return CadPeIndex(root, cases, _marker(root))


def read_image(path: Path) -> tuple[np.ndarray, Geometry]:
    """A 3-D volume (z, y, x) as SimpleITK reads it, with its geometry; InputError naming the file."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: volume not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise InputError(f"{path}: SimpleITK could not read it ({lines[-1] if lines else 'error'})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: a 3-D single-channel volume is expected, got size {image.GetSize()} with "
                         f"{image.GetNumberOfComponentsPerPixel()} component(s)")
    try:
        geometry = Geometry.of(image)
    except ValueError as err:
        raise InputError(f"{path}: unusable geometry ({err})") from None
    return sitk.GetArrayFromImage(image), geometry


def read_ct(path: Path) -> tuple[np.ndarray, Geometry]:
    """A CT in HU as int16 (z, y, x); float files are rounded, values outside int16 are refused."""
    volume, geometry = read_image(path)
    if volume.dtype != np.int16:
        if not np.issubdtype(volume.dtype, np.number) or not np.isfinite(volume).all() \
                or volume.min() < -32768 or volume.max() > 32767:
            raise InputError(f"{path}: {volume.dtype} values do not fit int16 HU")
        volume = np.rint(volume).astype(np.int16)
    return volume, geometry


def same_grid(a: Geometry, b: Geometry, tolerance: float = 1e-4) -> bool:
    """Whether two geometries put their voxels at the same world points (up to header rounding, in mm)."""
    return a.size == b.size and all(np.allclose(getattr(a, k), getattr(b, k), atol=tolerance, rtol=0)
                                    for k in ("origin", "spacing", "direction"))


def read_case(case: CadPeCase) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """A CAD-PE case: int16 HU (z, y, x), its bool embolus mask on the same grid, and the geometry."""
    volume, geometry = read_ct(case.image)
    mask, mask_geometry = read_image(case.mask)
    if not same_grid(geometry, mask_geometry):
        differ = [k for k in ("size", "origin", "spacing", "direction")
                  if not np.allclose(getattr(geometry, k), getattr(mask_geometry, k), atol=1e-4, rtol=0)]
        raise InputError(f"{case.mask}: mask grid differs from its CT {case.image} in {', '.join(differ)} "
                         f"({', '.join(f'{getattr(mask_geometry, k)} vs {getattr(geometry, k)}' for k in differ)})")
    values = np.unique(mask[mask != 0])  # emboli are few voxels: no sort of the whole volume
    if len(values) > 1 or (len(values) and not values[0] > 0):
        raise InputError(f"{case.mask}: a binary mask (0 and one positive value) is expected, found values "
                         f"{[0, *values[:8].tolist()]}")
    return volume, mask != 0, geometry


# ---- PE-CAD -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeCadCase:
    id: str  # e.g. "Patient21108"
    image: Path
    world: np.ndarray  # (N, 3) float64 candidate points, mm x y z
    labels: np.ndarray  # (N,) uint8
    lines: np.ndarray  # (N,) int64 line of each row in the candidate table (the header is line 1)
    table: Path

    @property
    def file(self) -> Path:
        return self.image


@dataclass(frozen=True)
class PeCadIndex:
    splits: dict[str, list[str]]  # train / val / test patient ids of the fold, in file order
    cases: dict[str, PeCadCase]  # every patient of the splits
    fold: int


def _resolve(root: Path, value: str | None, key: str) -> Path:
    if not value:
        raise InputError(f"datasets.pe.pe_cad.{key} must be set when pe_cad.splits_dir is")
    path = Path(value)
    return path if path.is_absolute() else Path(root) / path


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: unreadable CSV ({str(err).strip()})") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def read_split_files(folder: Path, fold: int) -> dict[str, list[str]]:
    """Models Genesis' ``{train,val,test}_cv-<fold>.csv``: patient ids per split; a patient in two is refused."""
    if fold not in FOLDS:
        raise InputError(f"datasets.pe.pe_cad.fold must be one of {list(FOLDS)}, got {fold}")
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for split in SPLIT_NAMES:
        path = Path(folder) / f"{split}_cv-{fold}.csv"
        table = _read_csv(path)
        if SPLIT_COLUMN not in table.columns:
            raise InputError(f"{path}: no {SPLIT_COLUMN} column; the header has {', '.join(table.columns)}")
        ids = [str(v).strip() for v in table[SPLIT_COLUMN] if str(v).strip()]
        for patient in ids:
            if patient in seen:
                raise InputError(f"{path}: {patient} is also in the {seen[patient]} split")
            seen[patient] = split
        splits[split] = ids
    return splits


def _scan_file(folder: Path, patient: str) -> Path:
    for suffix in SCAN_SUFFIXES:
        path = Path(folder) / f"{patient}{suffix}"
        if path.is_file():
            return path
    return Path(folder) / f"{patient}{SCAN_SUFFIXES[0]}"  # reading it says it is missing


def read_pe_cad(root: Path, pe_cad: dict[str, Any]) -> PeCadIndex:
    """Index PE-CAD from the ``datasets.pe.pe_cad`` settings (module docstring); PEUnavailable when its split
    folder does not exist."""
    splits_dir = _resolve(root, pe_cad.get("splits_dir"), "splits_dir")
    if not splits_dir.is_dir():
        raise unavailable(splits_dir)
    fold = int(pe_cad.get("fold", 1))
    splits = read_split_files(splits_dir, fold)
    table_path = _resolve(root, pe_cad.get("candidates"), "candidates")
    scans_dir = _resolve(root, pe_cad.get("scans_dir"), "scans_dir")
    table = _read_csv(table_path)
    missing = [c for c in CANDIDATE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{table_path}: missing column(s) {', '.join(missing)}; "
                         f"expected {','.join(CANDIDATE_COLUMNS)}")
    lines = np.arange(len(table), dtype=np.int64) + 2
    numbers = {}
    for column in ("x", "y", "z", "label"):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) if column != "label" else ~np.isin(values, (0, 1))
        if bad.any():
            row = int(np.argmax(bad))
            what = "0 or 1" if column == "label" else "a number"
            raise InputError(f"{table_path}: line {lines[row]}: {column} {table[column].iloc[row]!r} is not {what}")
        numbers[column] = values
    patients = table["patient"].str.strip().to_numpy()
    world = np.stack([numbers["x"], numbers["y"], numbers["z"]], axis=1)
    cases = {}
    for patient in (p for split in SPLIT_NAMES for p in splits[split]):
        rows = np.flatnonzero(patients == patient)
        cases[patient] = PeCadCase(patient, _scan_file(scans_dir, patient), world[rows],
                                   numbers["label"][rows].astype(np.uint8), lines[rows], table_path)
    return PeCadIndex(splits, cases, fold)


def locate(world: np.ndarray, geometry: Geometry, file: Path, lines: np.ndarray | None = None) -> np.ndarray:
    """Continuous (i, j, k) indices of world points; InputError naming the point (and table line) outside."""
    index = world_to_index(geometry, world)
    outside = ~inside(geometry, index)
    if outside.any():
        row = int(np.argmax(outside))
        where = f"line {lines[row]}: " if lines is not None else ""
        raise InputError(f"{file}: {where}point {tuple(np.round(world[row], 3).tolist())} mm lies outside the scan "
                         f"(size {geometry.size})")
    return index

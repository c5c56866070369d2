"""Reader of BraTS 2018 training data: ``<HGG|LGG>/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``.

Cases are named ``Brats18_<institution>_<id>_<timepoint>`` (``Brats18_2013_2_1``, ``Brats18_CBICA_AAB_1``);
the release is co-registered to SRI24, 1 mm isotropic 240x240x155 and skull-stripped, so the brain is
exactly the non-zero voxels. Labels are 0, 1 (necrosis / non-enhancing core), 2 (oedema) and 4
(enhancing); 3 is unused, and a seg file holding it is an InputError naming the file. A case is read
one at a time (:func:`read_case`): its four modalities and seg checked to share one grid, reoriented
together, each modality z-scored inside its brain with the background kept at exactly 0
(:func:`zscore_in_brain`). The Models Genesis folds (``fold_{1,2,3}.csv``) are read by :func:`read_folds`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.data.volumes.geometry import Geometry
from dira.data.volumes.nifti import read_aligned
from dira.errors import InputError

GRADES = ("HGG", "LGG")
MODALITIES = ("t1", "t1ce", "t2", "flair")
LABELS = (0, 1, 2, 4)
WHOLE_TUMOUR = (1, 2, 4)
CASE = re.compile(r"^Brats18_[A-Za-z0-9]+_[A-Za-z0-9]+_\d+$")
FOLDS = tuple(f"fold_{k}.csv" for k in (1, 2, 3))
RELEASE_FOLDER = "MICCAI_BraTS_2018_Data_Training"  # what the zip unpacks into


@dataclass(frozen=True)
class BratsCase:
    id: str  # e.g. Brats18_CBICA_AAB_1
    grade: str  # HGG or LGG
    folder: Path

    def file(self, kind: str) -> Path:
        """``<case>_<kind>.nii.gz`` (kind: a modality or ``seg``); ``.nii`` when only that exists."""
        path = self.folder / f"{self.id}_{kind}.nii.gz"
        plain = path.with_suffix("")
        return plain if not path.exists() and plain.exists() else path

    @property
    def patient(self) -> str:
        """The case id without its timepoint: the unit a patient-level split keeps together."""
        return self.id.rsplit("_", 1)[0]


@dataclass(frozen=True)
class BratsIndex:
    root: Path
    cases: dict[str, BratsCase]  # by id, sorted
    synthetic: dict[str, Any] | None

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"


def read_brats(root: Path) -> BratsIndex:
    """Index the case folders under ``root``/HGG and ``root``/LGG (or ``root``/MICCAI_BraTS_2018_Data_Training/...)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: BraTS folder not found")
    base = root / RELEASE_FOLDER if not any((root / g).is_dir() for g in GRADES) else root
    if not any((base / g).is_dir() for g in GRADES):
        raise InputError(f"{root}: no HGG/ or LGG/ folder (extract {RELEASE_FOLDER}.zip here)")
    cases: dict[str, BratsCase] = {}
    for grade in GRADES:
        folder = base / grade
        if not folder.is_dir():
            continue
        for case in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not CASE.match(case.name):
                raise InputError(f"{case}: not a BraTS 2018 case folder (expected Brats18_<institution>_<id>_<n>)")
            if case.name in cases:
                raise InputError(f"{case}: case {case.name} is also in {cases[case.name].folder}")
            cases[case.name] = BratsCase(case.name, grade, case)
    if not cases:
        raise InputError(f"{base}: HGG/ and LGG/ hold no case folders")
    markers = [p for p in (root / SYNTHETIC_MARKER, base / SYNTHETIC_MARKER) if p.is_file()]
    synthetic = json.loads(markers[0].read_text()) if markers else None
    return BratsIndex(root, dict(sorted(cases.items())), synthetic)


def check_labels(labels: np.ndarray, path: Path) -> None:
    """InputError naming ``path`` when the seg holds anything but 0, 1, 2, 4 (3 is unused in BraTS 2018)."""
    unknown = np.setdiff1d(np.unique(labels), LABELS)
    if unknown.size:
        hint = " (label 3 is unused in BraTS 2018: is this a BraTS 2017/2019+ or relabelled file?)" \
            if 3 in unknown else ""
        raise InputError(f"{path}: labels {unknown.tolist()} found; BraTS 2018 has only 0, 1, 2, 4{hint}")


def zscore_in_brain(volume: np.ndarray) -> np.ndarray:
    """float32 z-score of one modality over its brain (voxels > 0); the background stays exactly 0.

    The statistics are the brain's only: the background is ~80 % of the volume and would dominate them.
    """
    out = np.zeros(volume.shape, np.float32)
    brain = volume > 0
    if not brain.any():
        return out
    values = volume[brain].astype(np.float64)
    std = values.std()
    out[brain] = (values - values.mean()) / (std if std > 0 else 1.0)
    return out


def read_case(case: BratsCase) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """The four modalities z-scored in the brain, (4, z, y, x) float32 in ``MODALITIES`` order, the uint8
    label map (z, y, x) and their geometry, all reoriented to LPS+; InputError naming the file at fault."""
    paths = [case.file(m) for m in MODALITIES]
    seg = case.file("seg")
    missing = [p for p in [*paths, seg] if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: missing from case {case.id} ({len(missing)} of its 5 files missing)")
    images, (labels,), geometry = read_aligned(paths[0], [seg], image_paths=paths[1:])
    check_labels(labels, seg)
    return np.stack([zscore_in_brain(v) for v in images]), labels, geometry


def whole_tumour(labels: np.ndarray) -> np.ndarray:
    """Whole tumour (labels 1, 2, 4) as uint8 0/1: the mask of Models Genesis' BMS task."""
    return np.isin(labels, WHOLE_TUMOUR).astype(np.uint8)


def read_folds(folder: Path, known: set[str] | dict[str, Any]) -> list[list[str]]:
    """The case ids of ``fold_1.csv``..``fold_3.csv`` (no header, one id per line, blank lines ignored).

    InputError naming the file and line for an id with no case folder or listed twice, and naming the file
    for one that lists no case or is not UTF-8 text (a BOM and CRLF line ends are read as a plain file).
    """
    folder = Path(folder)
    folds: list[list[str]] = []
    seen: dict[str, str] = {}
    for name in FOLDS:
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: BraTS fold file not found (Models Genesis' data/bms/{name})")
        ids = []
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: not UTF-8 text ({err.reason})") from None
        for line_number, line in enumerate(text.splitlines(), start=1):
            case = line.strip().strip(",").strip()
            if not case:
                continue
            where = f"{path}: line {line_number}: case {case}"
            if case in seen:
                raise InputError(f"{where} is listed twice (also at {seen[case]})")
            if case not in known:
                raise InputError(f"{where} has no case folder under HGG/ or LGG/")
            seen[case] = f"{name} line {line_number}"
            ids.append(case)
        if not ids:
            raise InputError(f"{path}: lists no cases")
        folds.append(ids)
    return folds

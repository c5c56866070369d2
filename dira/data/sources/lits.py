"""Reader of LiTS 2017 as released: ``volume-N.nii`` (CT, HU) and ``segmentation-N.nii`` (0 bg, 1 liver, 2 tumour).

The two training batches unpack into one folder or two (``Training_Batch1/``, ``Training_Batch2/``), so
the volumes are looked for in ``root`` and its direct subfolders; ``.nii.gz`` is accepted too. Indexing
only lists files; a case is read (and checked) one at a time by :func:`read_case`, which returns the CT
and its label map reoriented together to LPS+ (:mod:`dira.data.volumes.nifti`). The liver task's mask
is labels 1 ∪ 2 (:func:`liver_mask`). Errors name the file.
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

LABELS = {0: "background", 1: "liver", 2: "tumour"}
VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")


def volume_name(index: int) -> str:
    return f"volume-{index}.nii"


def segmentation_name(index: int) -> str:
    return f"segmentation-{index}.nii"


@dataclass(frozen=True)
class LitsCase:
    index: int  # the N of volume-N: the Models Genesis split is by this number
    volume: Path
    segmentation: Path  # may be missing on disk: reading the case says so

    @property
    def id(self) -> str:
        return f"volume-{self.index}"


@dataclass(frozen=True)
class LitsIndex:
    root: Path
    cases: dict[int, LitsCase]  # by index, sorted
    synthetic: dict[str, Any] | None  # the synthetic writer's marker; None for the real set

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"


def read_lits(root: Path) -> LitsIndex:
    """Index the ``volume-N`` files under ``root`` (and its direct subfolders) with their segmentations."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: LiTS folder not found")
    cases: dict[int, LitsCase] = {}
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        for path in sorted(folder.iterdir()):
            match = VOLUME.match(path.name)
            if match is None:
                continue
            index = int(match.group(1))
            if index in cases:
                raise InputError(f"{path}: volume {index} is also at {cases[index].volume}")
            suffix = match.group(2) or ""
            segmentation = path.with_name(f"segmentation-{index}.nii{suffix}")
            if not segmentation.exists():  # the other compression, else left missing for read_case to report
                other = path.with_name(f"segmentation-{index}.nii{'' if suffix else '.gz'}")
                segmentation = other if other.exists() else segmentation
            cases[index] = LitsCase(index, path, segmentation)
    if not cases:
        raise InputError(f"{root}: no volume-N.nii files (extract Training_Batch1.zip and Training_Batch2.zip here)")
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return LitsIndex(root, dict(sorted(cases.items())), synthetic)


def read_case(case: LitsCase) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """The float32 HU volume and uint8 label map (z, y, x), both in LPS+, and their geometry.

    InputError naming the files when the segmentation is missing, is not on the volume's grid (shape or
    affine), or holds labels other than 0, 1, 2.
    """
    if not case.segmentation.is_file():
        raise InputError(f"{case.volume}: its segmentation {case.segmentation} is missing")
    (volume,), (labels,), geometry = read_aligned(case.volume, [case.segmentation])
    unknown = np.setdiff1d(np.unique(labels), list(LABELS))
    if unknown.size:
        raise InputError(f"{case.segmentation}: labels {unknown.tolist()} found; LiTS has only 0 (background), "
                         "1 (liver) and 2 (tumour)")
    return volume, labels, geometry


def liver_mask(labels: np.ndarray) -> np.ndarray:
    """The whole liver (labels 1 ∪ 2) as uint8 0/1: the mask of Models Genesis' LCS task."""
    return (labels > 0).astype(np.uint8)

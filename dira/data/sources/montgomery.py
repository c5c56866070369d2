"""Reader of the NIH Montgomery County chest X-ray set as released (the ``MontgomerySet`` folder).

``CXR_png/MCUCXR_NNNN_L.png`` holds 16-bit grey radiographs, portrait or landscape (L: 0 normal,
1 tuberculosis); ``ManualMask/leftMask/`` and ``ManualMask/rightMask/`` hold one uint8 mask per lung
under the same name (nonzero = lung), and the lung mask is their union; ``ClinicalReadings/`` holds a
text file per image (sex, age, findings). Every image's name, masks and sizes are checked from the PNG
headers before any pixel is decoded; a sample that cannot be used goes to ``report_bad``, which raises
by default (``prepare.on_bad_sample``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dira.data.sources.images import png_size
from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.errors import InputError

IMAGES = "CXR_png"
LEFT_MASKS = "ManualMask/leftMask"  # the patient's left lung: the image's right side on a PA view
RIGHT_MASKS = "ManualMask/rightMask"
READINGS = "ClinicalReadings"
SET_FOLDER = "MontgomerySet"
NAME = re.compile(r"MCUCXR_(\d{4})_([01])")
SEX_PREFIX, AGE_PREFIX = "Patient's Sex:", "Patient's Age:"

ReportBad = Callable[[str, Path, InputError], None]  # (image id, file at fault, error)


def raise_bad(image_id: str, file: Path, error: InputError) -> None:
    """The default ``report_bad``: the first unusable sample stops the reader."""
    raise error


@dataclass(frozen=True)
class ClinicalReading:
    sex: str | None  # as written, e.g. 'M'; None when line 1 is not "Patient's Sex: ..."
    age: int | None  # years; None when line 2 is not "Patient's Age: 047Y"
    findings: str  # the remaining lines, e.g. 'normal'


@dataclass(frozen=True)
class MontgomeryImage:
    image_id: str  # the file stem, MCUCXR_NNNN_L
    number: int  # NNNN, one per patient
    tuberculosis: bool  # L
    image: Path
    left_mask: Path
    right_mask: Path
    size: tuple[int, int]  # (width, height), shared by the image and both masks
    reading: ClinicalReading | None  # None when ClinicalReadings/ has no file for it


@dataclass(frozen=True)
class MontgomeryIndex:
    root: Path
    listed: list[str]  # the stem of every PNG in CXR_png/, usable or not
    images: dict[str, MontgomeryImage]  # the usable ones
    synthetic: dict[str, Any] | None  # the synthetic writer's marker; None for the real set

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"


def parse_reading(text: str) -> ClinicalReading:
    """Line 1 ``Patient's Sex: M``, line 2 ``Patient's Age: 047Y``, then free-text findings."""
    lines = [line.strip() for line in text.splitlines()]
    lines += [""] * (2 - len(lines))
    sex = lines[0][len(SEX_PREFIX):].strip() if lines[0].startswith(SEX_PREFIX) else ""
    age_match = re.fullmatch(rf"{re.escape(AGE_PREFIX)}\s*(\d+)\s*Y?", lines[1], re.IGNORECASE)
    findings = "\n".join(lines[2:]).strip()
    return ClinicalReading(sex or None, int(age_match.group(1)) if age_match else None, findings)


def read_reading(path: Path) -> ClinicalReading | None:
    if not path.is_file():
        return None
    return parse_reading(path.read_text(encoding="utf-8", errors="replace"))


def read_radiograph(path: Path) -> np.ndarray:
    """The grey levels as stored: uint16 for the release's 16-bit PNGs (12 bits used), uint8 for 8-bit."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "I;16", "I;16B", "I;16L", "I"):
                image = image.convert("L")
            pixels = np.asarray(image)
    except Exception as err:  # decoding errors of a damaged PNG body surface only here
        raise InputError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None
    return pixels.astype(np.uint16) if pixels.dtype.kind in "iu" and pixels.dtype.itemsize > 1 else pixels


def _read_mask(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L") if image.mode in ("P", "RGB", "RGBA", "LA") else image) > 0
    except Exception as err:
        raise InputError(f"{path}: unreadable mask ({type(err).__name__}: {err})") from None


def size_mismatch(mask: Path, mask_size: tuple[int, int], image: Path, image_size: tuple[int, int]) -> InputError:
    return InputError(f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image {image} is "
                      f"{image_size[0]}x{image_size[1]}")


def read_lung_mask(record: MontgomeryImage) -> np.ndarray:
    """uint8 0/1 (height, width): the union of the left and right lung masks."""
    width, height = record.size
    lungs = np.zeros((height, width), bool)
    for path in (record.left_mask, record.right_mask):
        mask = _read_mask(path)
        if mask.shape != (height, width):
            raise size_mismatch(path, mask.shape[::-1], record.image, record.size)
        lungs |= mask
    return lungs.astype(np.uint8)


def _mask_problem(mask: Path, image: Path, image_size: tuple[int, int]) -> InputError | None:
    if not mask.is_file():
        return InputError(f"{mask}: lung mask of {image.name} not found")
    try:
        mask_size = png_size(mask)
    except InputError as err:
        return err
    return None if mask_size == image_size else size_mismatch(mask, mask_size, image, image_size)


def _index_image(root: Path, png: Path, report_bad: ReportBad) -> MontgomeryImage | None:
    """The image's record, or None once its problem is reported: bad name, missing or mismatched mask."""
    name = NAME.fullmatch(png.stem)
    if name is None:
        report_bad(png.stem, png, InputError(f"{png}: name is not MCUCXR_NNNN_L.png (L = 0 normal, 1 TB)"))
        return None
    try:
        size = png_size(png)
    except InputError as err:
        report_bad(png.stem, png, err)
        return None
    masks = root / LEFT_MASKS / png.name, root / RIGHT_MASKS / png.name
    for mask in masks:
        problem = _mask_problem(mask, png, size)
        if problem is not None:
            report_bad(png.stem, mask, problem)
            return None
    return MontgomeryImage(png.stem, int(name.group(1)), name.group(2) == "1", png, *masks, size,
                           read_reading(root / READINGS / f"{png.stem}.txt"))


def set_folder(root: Path) -> Path:
    """``root`` if it holds CXR_png/, else its MontgomerySet/ subfolder (how the archive unpacks)."""
    root = Path(root)
    if not (root / IMAGES).is_dir() and (root / SET_FOLDER / IMAGES).is_dir():
        return root / SET_FOLDER
    return root


def read_montgomery(root: Path, report_bad: ReportBad = raise_bad) -> MontgomeryIndex:
    """Index the images under ``root`` (the MontgomerySet folder or its parent) with their masks; no pixel
    is decoded."""
    root = set_folder(root)
    folder = root / IMAGES
    if not folder.is_dir():
        raise InputError(f"{folder}: Montgomery image folder not found (nor {root / SET_FOLDER / IMAGES})")
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not pngs:
        raise InputError(f"{folder}: no PNG images")
    images = {}
    for png in pngs:
        record = _index_image(root, png, report_bad)
        if record is not None:
            images[record.image_id] = record
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return MontgomeryIndex(root, [p.stem for p in pngs], images, synthetic)

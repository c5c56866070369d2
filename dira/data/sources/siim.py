"""Reader of SIIM-ACR Pneumothorax (stage 1) as released: a DICOM UID tree and train-rle.csv.

The traps: the CSV header is ``ImageId, EncodedPixels`` and the values start with a space too (some
copies drop it), an image with several pneumothorax regions has one row per region, negatives are
``-1``, the RLE is relative and column-major (``rle``), and the DICOMs sit three folders deep under
``<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` with ImageId = the file stem. Every
row is checked against its DICOM's header before any pixel is decoded; a sample that cannot be used
goes to ``report_bad``, which raises by default (``prepare.on_bad_sample``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.data.sources.rle import check_rle_fits, decode_rle, rle_runs
from dira.errors import InputError

TRAIN_DICOMS = "dicom-images-train"
TEST_DICOMS = "dicom-images-test"  # searched too: copies of the CSV that also cover stage-1 test images
RLE_CSV = "train-rle.csv"
RLE_COLUMNS = ("ImageId", "EncodedPixels")  # as written: "ImageId, EncodedPixels"

ReportBad = Callable[[str, Path, InputError], None]  # (image id, file at fault, error)


def raise_bad(image_id: str, file: Path, error: InputError) -> None:
    """The default ``report_bad``: the first unusable sample stops the reader."""
    raise error


@dataclass(frozen=True)
class SiimImage:
    image_id: str  # = SOPInstanceUID = the DICOM's file stem
    dicom: Path
    encoded: tuple[str, ...]  # EncodedPixels of each of its rows, stripped; "-1" for a negative
    lines: tuple[int, ...]  # line numbers of those rows in train-rle.csv
    height: int  # Rows and Columns of the DICOM, the frame the RLE runs over
    width: int

    @property
    def positive(self) -> bool:
        return any(bool((ends > starts).any()) for starts, ends in map(rle_runs, self.encoded))


@dataclass(frozen=True)
class SiimIndex:
    root: Path
    rle_csv: Path
    listed: list[str]  # every ImageId of train-rle.csv in file order, usable or not
    images: dict[str, SiimImage]  # the usable ones
    synthetic: dict[str, Any] | None  # the synthetic writer's marker; None for the real set

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"


def locate_dicoms(root: Path) -> dict[str, Path]:
    """ImageId (file stem) -> path of every .dcm under dicom-images-train/ and dicom-images-test/."""
    folders = [root / name for name in (TRAIN_DICOMS, TEST_DICOMS) if (root / name).is_dir()]
    if not folders:
        raise InputError(f"{root / TRAIN_DICOMS}: DICOM folder not found")
    found: dict[str, Path] = {}
    for folder in folders:
        for parent, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(".dcm"):
                    continue
                path = Path(parent) / name
                if path.stem in found:
                    raise InputError(f"{path}: ImageId {path.stem} also at {found[path.stem]}")
                found[path.stem] = path
    return found


def read_rle_csv(path: Path, report_bad: ReportBad = raise_bad) -> tuple[list[str], dict[str, list[tuple[int, str]]]]:
    """Every ImageId in file order, and ImageId -> [(line number, EncodedPixels)] of the usable ones.

    Names and values are stripped of spaces. A row that is not two fields, or whose RLE is not
    offset/length pairs of integers, goes to ``report_bad``, and its image is left out with all its rows.
    """
    if not path.is_file():
        raise InputError(f"{path}: SIIM-ACR file not found")
    listed: dict[str, None] = {}
    rows: dict[str, list[tuple[int, str]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = tuple(name.strip() for name in next(reader, []))
        if header != RLE_COLUMNS:
            raise InputError(f"{path}, line 1: expected the columns {', '.join(RLE_COLUMNS)}, found {header}")
        for line_no, fields in enumerate(reader, start=2):
            fields = [field.strip() for field in fields]
            if not any(fields):
                continue
            image_id = fields[0]
            known = image_id in listed
            listed[image_id] = None
            if known and image_id not in rows:  # already rejected
                continue
            try:
                if len(fields) != 2 or not image_id:
                    raise ValueError(f"expected 2 fields (ImageId, EncodedPixels), found {len(fields)}")
                rle_runs(fields[1])
            except ValueError as err:
                rows.pop(image_id, None)
                report_bad(image_id, path, InputError(f"{path}, line {line_no}: image {image_id}: {err}"))
                continue
            rows.setdefault(image_id, []).append((line_no, fields[1]))
    if not listed:
        raise InputError(f"{path}: no data rows")
    return list(listed), rows


def read_dicom_header(path: Path) -> pydicom.Dataset:
    """The DICOM's attributes without its pixel data; InputError naming the file if it is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # InvalidDicomError, OSError, EOFError, struct.error...: a damaged or foreign file
        raise InputError(f"{path}: unreadable DICOM ({type(err).__name__}: {err})") from None


def read_dicom_pixels(path: Path) -> np.ndarray:
    """The grey frame as stored (uint8 for the release's 8-bit images), MONOCHROME1 turned to MONOCHROME2."""
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except Exception as err:  # pydicom and its decoders raise many types for damaged or unsupported data
        raise InputError(f"{path}: unreadable DICOM ({type(err).__name__}: {err})") from None
    if pixels.ndim != 2:
        raise InputError(f"{path}: expected one grey frame, found pixel data of shape {pixels.shape}")
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":  # white = air: invert
        pixels = (1 << int(dataset.BitsStored)) - 1 - pixels
    return pixels


def load_mask(image: SiimImage, rle_csv: Path) -> np.ndarray:
    """uint8 0/1 (height, width): the union of the image's rows; InputError naming the row that overflows."""
    mask = np.zeros((image.height, image.width), np.uint8)
    for line_no, encoded in zip(image.lines, image.encoded, strict=True):
        try:
            mask |= decode_rle(encoded, image.height, image.width)
        except ValueError as err:
            raise InputError(f"{rle_csv}, line {line_no}: image {image.image_id}: {err}") from None
    return mask


def _frame_size(path: Path) -> tuple[int, int]:
    header = read_dicom_header(path)
    if int(header.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"{path}: {header.SamplesPerPixel} samples per pixel; expected grey images")
    if "Rows" not in header or "Columns" not in header:
        raise InputError(f"{path}: DICOM without Rows and Columns")
    return int(header.Rows), int(header.Columns)


def _index_image(image_id: str, rows: list[tuple[int, str]], dicoms: dict[str, Path], rle_csv: Path,
                 report_bad: ReportBad) -> SiimImage | None:
    """The image's record, or None once its problem is reported: missing DICOM, bad header, overflow."""
    if image_id not in dicoms:
        report_bad(image_id, rle_csv, InputError(
            f"{rle_csv}, line {rows[0][0]}: image {image_id} not found under {TRAIN_DICOMS}/ (nor {TEST_DICOMS}/)"))
        return None
    try:
        height, width = _frame_size(dicoms[image_id])
    except InputError as err:
        report_bad(image_id, dicoms[image_id], err)
        return None
    for line_no, encoded in rows:
        try:
            check_rle_fits(encoded, height, width)
        except ValueError as err:
            report_bad(image_id, rle_csv, InputError(f"{rle_csv}, line {line_no}: image {image_id}: {err} "
                                                     f"({dicoms[image_id].name})"))
            return None
    return SiimImage(image_id, dicoms[image_id], tuple(e for _, e in rows), tuple(n for n, _ in rows),
                     height, width)


def read_siim(root: Path, report_bad: ReportBad = raise_bad) -> SiimIndex:
    """Index train-rle.csv against the DICOM tree and headers under ``root``; no pixel is decoded."""
    root = Path(root)
    rle_csv = root / RLE_CSV
    listed, rows = read_rle_csv(rle_csv, report_bad)
    dicoms = locate_dicoms(root)
    images = {}
    for image_id, image_rows in rows.items():
        image = _index_image(image_id, image_rows, dicoms, rle_csv, report_bad)
        if image is not None:
            images[image_id] = image
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return SiimIndex(root, rle_csv, listed, images, synthetic)

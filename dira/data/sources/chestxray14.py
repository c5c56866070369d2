"""Reader of NIH ChestX-ray14 as released: one code path for the real set and the synthetic stand-in.

The release has traps a casual parser falls into: ``Data_Entry_2017_v2020.csv`` names 9 columns but every
row has 11 fields (the bracketed names hide commas), ``BBox_List_2017.csv`` has three empty header
columns and spells Infiltration 'Infiltrate', and 'No Finding' means all 14 labels are 0. Everything is
checked before anything is decoded, so a bad copy fails in seconds with the file and line at fault: a box
must be four finite numbers inside its PNG (give or take :data:`BOX_SLACK`), and a file that is not UTF-8
text is refused naming it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.labels import CHESTXRAY14_BOX_LABELS, CHESTXRAY14_LABELS, CHESTXRAY14_NO_FINDING
from dira.data.sources.images import png_size
from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.errors import InputError

DATA_ENTRY = "Data_Entry_2017_v2020.csv"
OLD_DATA_ENTRY = "Data_Entry_2017.csv"  # the 2017 release (and Kaggle mirror): trailing comma, bad ages
BBOX_LIST = "BBox_List_2017.csv"
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
SOURCE_FILES = (DATA_ENTRY, BBOX_LIST, TRAIN_VAL_LIST, TEST_LIST)

DATA_ENTRY_HEADER_LINE = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
DATA_ENTRY_FIELDS = 11
BBOX_HEADER_LINE = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
BBOX_FIELDS = 6
BOX_SLACK = 0.5  # px a box may reach past the image's edges: pixel centres or pixel corners at integers

_LABEL_COLUMN = {name: i for i, name in enumerate(CHESTXRAY14_LABELS)}


@dataclass(frozen=True)
class ImageRecord:
    image_id: str  # the PNG file name, e.g. 00000001_000.png
    path: Path
    patient_id: int
    labels: np.ndarray  # uint8 (14,), columns in CHESTXRAY14_LABELS order


@dataclass(frozen=True)
class Box:
    label: str  # canonical name (Infiltration, not Infiltrate)
    x: float  # top-left corner, width and height, in the PNG's pixels
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class ChestXray14Index:
    root: Path
    records: dict[str, ImageRecord]  # every image of the two split lists
    train_val: list[str]
    test: list[str]
    boxes: dict[str, list[Box]]  # image id -> its boxes, in file order
    synthetic: dict[str, Any] | None  # the synthetic writer's marker; None for the real set

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"

    def source_files(self) -> dict[str, Path]:
        return {name: self.root / name for name in SOURCE_FILES}


def encode_findings(cell: str, where: str) -> np.ndarray:
    """'A|B' -> 14-vector with ones at A and B; 'No Finding' -> all zeros (FAQ Q05: not 'normal')."""
    vector = np.zeros(len(CHESTXRAY14_LABELS), np.uint8)
    if cell == CHESTXRAY14_NO_FINDING:
        return vector
    for token in cell.split("|"):
        if token not in _LABEL_COLUMN:
            raise InputError(f"{where}: unknown finding {token!r} in {cell!r} "
                             f"(expected {CHESTXRAY14_NO_FINDING!r} or '|'-joined names of the 14 labels)")
        vector[_LABEL_COLUMN[token]] = 1
    return vector


def _require(path: Path) -> Path:
    if not path.is_file():
        hint = ""
        if path.name == DATA_ENTRY and (path.parent / OLD_DATA_ENTRY).is_file():
            hint = f" (found the older {OLD_DATA_ENTRY}; the v2020 file corrects its ages and format)"
        raise InputError(f"{path}: ChestX-ray14 file not found{hint}")
    return path


def _not_utf8(path: Path) -> InputError:
    """The error for a file that is not UTF-8 text, naming the line of its first undecodable byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")  # a BOM is valid UTF-8: positions count from the file's first byte
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        return InputError(f"{path}, line {line_no}: not UTF-8 text ({err.reason} at byte {err.start})")
    return InputError(f"{path}: not UTF-8 text")


def _csv_rows(path: Path, header: str, n_fields: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each data row, after checking the header line character for character."""
    try:
        with _require(path).open(newline="", encoding="utf-8-sig") as f:
            found = f.readline().rstrip("\r\n")
            if found != header:
                raise InputError(f"{path}: unexpected header\n  expected: {header}\n  found:    {found}")
            for line_no, fields in enumerate(csv.reader(f), start=2):
                if not fields:
                    continue
                if len(fields) < n_fields or any(extra.strip() for extra in fields[n_fields:]):
                    raise InputError(f"{path}, line {line_no}: expected {n_fields} fields, found {len(fields)}")
                yield line_no, fields[:n_fields]
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def read_data_entry(path: Path) -> dict[str, tuple[int, np.ndarray]]:
    """Image id -> (patient id, label vector) for every row of Data_Entry_2017_v2020.csv."""
    entries: dict[str, tuple[int, np.ndarray]] = {}
    for line_no, fields in _csv_rows(path, DATA_ENTRY_HEADER_LINE, DATA_ENTRY_FIELDS):
        where = f"{path}, line {line_no}"
        image_id, findings, patient = fields[0], fields[1], fields[3]
        if image_id in entries:
            raise InputError(f"{where}: image {image_id} appears twice")
        try:
            patient_id = int(patient)
        except ValueError:
            raise InputError(f"{where}: Patient ID {patient!r} is not an integer") from None
        entries[image_id] = (patient_id, encode_findings(findings, where))
    if not entries:
        raise InputError(f"{path}: no data rows")
    return entries


def read_bbox_list(path: Path, known_ids: set[str],
                   image_size: Callable[[str], tuple[int, int] | None] | None = None) -> dict[str, list[Box]]:
    """Image id -> boxes, with 'Infiltrate' mapped to the canonical 'Infiltration'.

    ``image_size(image_id)``, (width, height) or None when unknown, bounds each box's far edges; its near
    edges must be >= -BOX_SLACK either way.
    """
    boxes: dict[str, list[Box]] = {}
    for line_no, fields in _csv_rows(path, BBOX_HEADER_LINE, BBOX_FIELDS):
        where = f"{path}, line {line_no}"
        image_id, spelled = fields[0], fields[1]
        if spelled not in CHESTXRAY14_BOX_LABELS:
            raise InputError(f"{where}: unknown box label {spelled!r} (expected one of "
                             f"{', '.join(CHESTXRAY14_BOX_LABELS)})")
        if image_id not in known_ids:
            raise InputError(f"{where}: image {image_id} is not in {DATA_ENTRY}")
        try:
            x, y, w, h = (float(v) for v in fields[2:6])
        except ValueError:
            raise InputError(f"{where}: box coordinates {fields[2:6]} are not numbers") from None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise InputError(f"{where}: box coordinates {fields[2:6]} are not finite numbers")
        if not (w > 0 and h > 0):
            raise InputError(f"{where}: box width and height must be positive, got {w} and {h}")
        size = image_size(image_id) if image_size is not None else None
        width, height = size if size is not None else (math.inf, math.inf)
        if min(x, y) < -BOX_SLACK or x + w > width + BOX_SLACK or y + h > height + BOX_SLACK:
            bounds = f"its {width}x{height} pixels" if size is not None else "the image (a negative corner)"
            raise InputError(f"{where}: box (x {x:g}, y {y:g}, w {w:g}, h {h:g}) of image {image_id} lies "
                             f"outside {bounds}")
        boxes.setdefault(image_id, []).append(Box(CHESTXRAY14_BOX_LABELS[spelled], x, y, w, h))
    return boxes


def read_split_list(path: Path, known_ids: dict[str, Any]) -> list[str]:
    """The bare file names of a split list, each checked against Data_Entry."""
    ids: list[str] = []
    seen: set[str] = set()
    try:
        text = _require(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        image_id = line.strip()
        if not image_id:
            continue
        if image_id not in known_ids:
            raise InputError(f"{path}, line {line_no}: {image_id} is not in {DATA_ENTRY}")
        if image_id in seen:
            raise InputError(f"{path}, line {line_no}: {image_id} is listed twice")
        seen.add(image_id)
        ids.append(image_id)
    if not ids:
        raise InputError(f"{path}: lists no images")
    return ids


def locate_images(root: Path) -> dict[str, Path]:
    """PNG name -> path, from ``root/images/`` (official tarballs) or ``root/images_NNN/images/`` (Kaggle)."""
    folders = [root / "images", *sorted(root.glob("images_*/images"))]
    found: dict[str, Path] = {}
    for folder in (f for f in folders if f.is_dir()):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".png"):
                    found.setdefault(entry.name, Path(entry.path))
    if not any(f.is_dir() for f in folders):
        raise InputError(f"{root / 'images'}: image folder not found "
                         "(nor the Kaggle mirror's images_NNN/images/)")
    return found


def _check_disjoint(train_val: list[str], test: list[str], entries: dict[str, tuple[int, np.ndarray]],
                    root: Path) -> None:
    both = set(train_val) & set(test)
    if both:
        raise InputError(f"{root / TEST_LIST}: {len(both)} image(s) also in {TRAIN_VAL_LIST}, "
                         f"e.g. {min(both)}")
    shared = {entries[i][0] for i in train_val} & {entries[i][0] for i in test}
    if shared:  # the official split is at patient level (FAQ Q09); a leak would inflate test scores
        raise InputError(f"{root / TEST_LIST}: {len(shared)} patient(s) also in {TRAIN_VAL_LIST}, "
                         f"e.g. patient {min(shared)}")


def read_chestxray14(root: Path) -> ChestXray14Index:
    """Read and cross-check the CSVs, split lists and image files under ``root``."""
    root = Path(root)
    entries = read_data_entry(root / DATA_ENTRY)
    train_val = read_split_list(root / TRAIN_VAL_LIST, entries)
    test = read_split_list(root / TEST_LIST, entries)
    _check_disjoint(train_val, test, entries, root)
    paths = locate_images(root)
    missing = [i for i in [*train_val, *test] if i not in paths]
    if missing:
        more = f" (and {len(missing) - 1} more listed images)" if len(missing) > 1 else ""
        raise InputError(f"{root / 'images' / missing[0]}: listed image not found{more}")

    def image_size(image_id: str) -> tuple[int, int] | None:
        try:
            return png_size(paths[image_id]) if image_id in paths else None
        except InputError:  # an unreadable PNG is reported when it is decoded (prepare.on_bad_sample)
            return None

    boxes = read_bbox_list(root / BBOX_LIST, set(entries), image_size)
    records = {i: ImageRecord(i, paths[i], *entries[i]) for i in [*train_val, *test]}
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return ChestXray14Index(root, records, train_val, test, boxes, synthetic)

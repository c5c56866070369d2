"""Reader of CheXpert v1.0 as released: one code path for the real set and the synthetic stand-in.

``root`` is the folder that holds ``train.csv`` and ``valid.csv`` (``CheXpert-v1.0-small/`` or ``CheXpert-v1.0/``).
The traps: ``Path`` values carry that folder's name as their first component, label cells are strings in four
states, and the uncertain state must survive until fine-tuning, where a policy turns it into a target. Each label
cell therefore becomes an int8 code, kept as is in the caches:

    1 = positive ('1.0'), 0 = negative ('0.0'), -1 = uncertain ('-1.0'), -2 = blank (not mentioned)

``apply_uncertainty`` maps codes to training targets. The optional test set is CheXlocalize's ``test_labels.csv``
with ``test/`` beside it; its non-label columns are unverified, so only ``Path`` and the 14 labels are required.
Everything is checked before anything is decoded, so a bad copy fails in seconds naming the file and line.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.errors import InputError

if TYPE_CHECKING:
    from dira.data.prepare.common import BadSamples

TRAIN_CSV, VALID_CSV, TEST_CSV = "train.csv", "valid.csv", "test_labels.csv"
RELEASE_PREFIXES = ("CheXpert-v1.0-small", "CheXpert-v1.0")

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)
COMPETITION_LABELS: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
HEADER: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS)
HEADER_LINE = ",".join(HEADER)

POSITIVE, NEGATIVE, UNCERTAIN, BLANK = 1, 0, -1, -2
LABEL_CODES: dict[str, int] = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN, "blank": BLANK}
# The release writes floats; the integer spellings are accepted for test_labels.csv, whose format is unverified.
_CELL_CODE = {"1.0": POSITIVE, "0.0": NEGATIVE, "-1.0": UNCERTAIN, "": BLANK, "1": POSITIVE, "0": NEGATIVE,
              "-1": UNCERTAIN}
_PATIENT = re.compile(r"(?:^|/)patient(\d+)/")
_VIEW = re.compile(r"_(frontal|lateral)\.jpg$")

UNCERTAINTY_POLICIES = ("ones", "zeros", "lsr-ones", "lsr-zeros")
_LSR_RANGE = {"lsr-ones": (0.55, 0.85), "lsr-zeros": (0.0, 0.3)}  # label-smoothing draws of BTL's loader


@dataclass(frozen=True)
class CheXpertImage:
    id: str  # the path below root, e.g. train/patient00001/study1/view1_frontal.jpg
    path: Path
    patient: int
    frontal: bool
    codes: np.ndarray  # int8 (14,), CHEXPERT_LABELS order, values in LABEL_CODES
    csv: Path
    line: int  # in csv; the header is line 1


@dataclass(frozen=True)
class CheXpertIndex:
    root: Path
    train: list[CheXpertImage]  # train.csv
    test: list[CheXpertImage]  # valid.csv (evaluation 'valid') or test_labels.csv (evaluation 'test')
    test_csv: str
    synthetic: dict[str, Any] | None  # the synthetic writer's marker; None for the real set

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"

    def source_files(self) -> dict[str, Path]:
        return {name: self.root / name for name in (TRAIN_CSV, self.test_csv)}


def encode_cell(cell: str, where: str) -> int:
    try:
        return _CELL_CODE[cell]
    except KeyError:
        raise InputError(f"{where}: unknown label cell {cell!r} (expected '1.0', '0.0', '-1.0' or empty)") from None


def relative_image_path(path: str, where: str) -> str:
    """``Path`` below root: the release's ``CheXpert-v1.0[-small]/`` prefix stripped, if present."""
    parts = PurePosixPath(path).parts
    if parts and parts[0] in RELEASE_PREFIXES:
        parts = parts[1:]
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise InputError(f"{where}: Path {path!r} is not a relative image path")
    return "/".join(parts)


def _image(root: Path, csv_path: Path, line: int, path_cell: str, frontal: bool, codes: list[int]) -> CheXpertImage:
    where = f"{csv_path}, line {line}"
    image_id = relative_image_path(path_cell, where)
    patient = _PATIENT.search(image_id)
    if patient is None:
        raise InputError(f"{where}: no patientNNNNN folder in Path {path_cell!r}")
    return CheXpertImage(image_id, root / image_id, int(patient.group(1)), frontal, np.array(codes, np.int8),
                         csv_path, line)


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty row; the header is line 1."""
    if not path.is_file():
        hint = ""
        for prefix in RELEASE_PREFIXES:
            if (path.parent / prefix / path.name).is_file():
                hint = f" (found {path.parent / prefix / path.name}: pass {path.parent / prefix} as root)"
        raise InputError(f"{path}: CheXpert file not found{hint}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        for line_no, fields in enumerate(csv.reader(f), start=1):
            if fields:
                yield line_no, fields


def _check_binary(image: CheXpertImage) -> None:
    bad = np.flatnonzero((image.codes != POSITIVE) & (image.codes != NEGATIVE))
    if bad.size:
        raise InputError(f"{image.csv}, line {image.line}: {CHEXPERT_LABELS[bad[0]]} is "
                         f"{'uncertain' if image.codes[bad[0]] == UNCERTAIN else 'blank'}; "
                         f"{image.csv.name} must hold only 0/1 (radiologist consensus)")


def read_label_csv(path: Path, root: Path, binary: bool = False) -> list[CheXpertImage]:
    """Every row of train.csv or valid.csv (exact 19-column header); ``binary``: allow only 0 and 1."""
    rows = _rows(path)
    _, found = next(rows, (1, []))
    if tuple(found) != HEADER:
        raise InputError(f"{path}: unexpected header\n  expected: {HEADER_LINE}\n  found:    {','.join(found)}")
    images = []
    for line_no, fields in rows:
        where = f"{path}, line {line_no}"
        if len(fields) != len(HEADER):
            raise InputError(f"{where}: expected {len(HEADER)} fields, found {len(fields)}")
        view = fields[3]
        if view not in ("Frontal", "Lateral"):
            raise InputError(f"{where}: Frontal/Lateral is {view!r}, expected 'Frontal' or 'Lateral'")
        codes = [encode_cell(cell, f"{where}, {name}") for name, cell in zip(CHEXPERT_LABELS, fields[5:], strict=True)]
        images.append(_image(root, path, line_no, fields[0], view == "Frontal", codes))
    return _checked(images, path, binary)


def read_test_labels(path: Path, root: Path) -> list[CheXpertImage]:
    """CheXlocalize's test_labels.csv: columns found by name, the view from the file name, only 0/1."""
    rows = _rows(path)
    _, found = next(rows, (1, []))
    missing = [name for name in ("Path", *CHEXPERT_LABELS) if name not in found]
    if missing:
        raise InputError(f"{path}: unexpected header, missing {', '.join(missing)}\n"
                         f"  expected: Path and the 14 labels {', '.join(CHEXPERT_LABELS)}\n"
                         f"  found:    {','.join(found)}")
    path_col, label_cols = found.index("Path"), [found.index(name) for name in CHEXPERT_LABELS]
    images = []
    for line_no, fields in rows:
        where = f"{path}, line {line_no}"
        if len(fields) != len(found):
            raise InputError(f"{where}: expected {len(found)} fields, found {len(fields)}")
        view = _VIEW.search(fields[path_col])
        if view is None:
            raise InputError(f"{where}: cannot tell the view from Path {fields[path_col]!r} "
                             "(expected a name ending in _frontal.jpg or _lateral.jpg)")
        codes = [encode_cell(fields[col], f"{where}, {name}") for name, col in zip(CHEXPERT_LABELS, label_cols,
                                                                                   strict=True)]
        images.append(_image(root, path, line_no, fields[path_col], view.group(1) == "frontal", codes))
    return _checked(images, path, binary=True)


def _checked(images: list[CheXpertImage], path: Path, binary: bool) -> list[CheXpertImage]:
    if not images:
        raise InputError(f"{path}: no data rows")
    seen: dict[str, int] = {}
    for image in images:
        if image.id in seen:
            raise InputError(f"{path}, line {image.line}: {image.id} is also listed on line {seen[image.id]}")
        seen[image.id] = image.line
        if binary:
            _check_binary(image)
    return images


def _present(images: list[CheXpertImage], bad_samples: BadSamples | None) -> list[CheXpertImage]:
    """The images whose file exists; a missing one is an error, or reported to ``bad_samples`` (its policy)."""
    kept = []
    for image in images:
        if image.path.is_file():
            kept.append(image)
            continue
        error = InputError(f"{image.path}: listed image not found ({image.csv}, line {image.line})")
        if bad_samples is None:
            raise error
        bad_samples.report(image.id, image.path, error)  # raises under 'error'; under 'skip' records it
    return kept


def read_chexpert(root: Path, evaluation: str = "valid", frontal_only: bool = False,
                  bad_samples: BadSamples | None = None) -> CheXpertIndex:
    """Read train.csv and the evaluation set under ``root``; check that every kept image exists.

    A missing image raises an InputError naming it and its CSV line, unless ``bad_samples`` (the
    ``prepare.on_bad_sample`` policy) says to skip it.
    """
    root = Path(root)
    if evaluation not in ("valid", "test"):
        raise InputError(f"unknown CheXpert evaluation set {evaluation!r} (expected 'valid' or 'test')")
    train = read_label_csv(root / TRAIN_CSV, root)
    if evaluation == "valid":
        test_csv, test = VALID_CSV, read_label_csv(root / VALID_CSV, root, binary=True)
    else:
        if not (root / TEST_CSV).is_file():
            raise InputError(f"{root / TEST_CSV}: not found; evaluation 'test' needs CheXlocalize's test_labels.csv "
                             f"and test/ folder copied into {root} (or use evaluation 'valid')")
        test_csv, test = TEST_CSV, read_test_labels(root / TEST_CSV, root)
    shared = {i.patient for i in train} & {i.patient for i in test}
    if shared:  # the official sets are disjoint by patient; a leak would inflate test scores
        raise InputError(f"{root / test_csv}: {len(shared)} patient(s) also in {TRAIN_CSV}, "
                         f"e.g. patient{min(shared):05d}")
    if frontal_only:
        train, test = [i for i in train if i.frontal], [i for i in test if i.frontal]
    train, test = _present(train, bad_samples), _present(test, bad_samples)
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return CheXpertIndex(root, train, test, test_csv, synthetic)


def apply_uncertainty(codes: np.ndarray, policy: str, rng: np.random.Generator) -> np.ndarray:
    """Float32 training targets from label codes: positive 1, negative and blank 0, uncertain by ``policy``.

    'ones' -> 1, 'zeros' -> 0, 'lsr-ones' -> U(0.55, 0.85), 'lsr-zeros' -> U(0, 0.3). The LSR policies draw
    anew for every uncertain cell at every call, as BenchmarkTransferLearning's loader does per item.
    """
    if policy not in UNCERTAINTY_POLICIES:
        raise InputError(f"unknown uncertainty policy {policy!r} (expected one of {', '.join(UNCERTAINTY_POLICIES)})")
    codes = np.asarray(codes)
    unknown = ~np.isin(codes, tuple(LABEL_CODES.values()))
    if unknown.any():
        raise ValueError(f"label codes must be in {sorted(LABEL_CODES.values())}, found {codes[unknown][0]}")
    targets = (codes == POSITIVE).astype(np.float32)
    uncertain = codes == UNCERTAIN
    if policy == "ones":
        targets[uncertain] = 1.0
    elif policy in _LSR_RANGE:
        targets[uncertain] = rng.uniform(*_LSR_RANGE[policy], size=int(uncertain.sum()))
    return targets

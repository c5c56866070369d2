"""Synthetic NIH ChestX-ray14 in the released on-disk layout, read by the same code as the real set.

It reproduces what a reader of the real release can trip over: the CSV header with 9 names but 11
fields, the BBox list's empty header columns and its 'Infiltrate' spelling, float artefacts in the
pixel spacing, RGBA PNGs among the grey ones, split lists at patient level. The same arguments give
byte-identical files: every random stream is keyed by (seed, purpose, patient, follow-up), and PNGs
carry no timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dira import __version__
from dira.data.labels import CHESTXRAY14_BOX_LABELS, CHESTXRAY14_LABELS, CHESTXRAY14_NO_FINDING
from dira.data.sources.chestxray14 import (
    BBOX_HEADER_LINE,
    BBOX_LIST,
    DATA_ENTRY,
    DATA_ENTRY_HEADER_LINE,
    SYNTHETIC_MARKER,
    TEST_LIST,
    TRAIN_VAL_LIST,
)
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.synthetic.phantom import PixelBox, draw_chest
from dira.errors import InputError
from dira.io import write_text

TEST_PATIENT_FRACTION = 0.2
NO_FINDING_RATE = 0.4
BOXED_TEST_FRACTION = 0.7  # of the test images with a boxable finding
# The real CSV's spacings are float sums printed with repr, hence values like 0.14300000000000002.
PIXEL_SPACINGS, SPACING_WEIGHTS = (0.1 + 0.043, 0.139, 0.168), (0.7, 0.2, 0.1)
BOX_FILE_LABEL = {canonical: spelled for spelled, canonical in CHESTXRAY14_BOX_LABELS.items()}

# Independent random streams, so that e.g. the image size never changes the labels.
_PATIENT, _SPLIT, _LABELS, _BOXED, _SCENE, _GRAIN, _BOX_JITTER = range(7)


@dataclass(frozen=True)
class PlannedImage:
    patient: int
    follow_up: int
    labels: tuple[str, ...]
    age: int
    gender: str
    view: str
    spacing: float
    test: bool

    @property
    def name(self) -> str:
        return f"{self.patient:08d}_{self.follow_up:03d}.png"


class _LabelDeck:
    """Deals labels from shuffled full decks so every class gets about the same number of positives."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.cards = rng, []

    def deal(self, k: int) -> tuple[str, ...]:
        chosen: list[int] = []
        while len(chosen) < k:
            if all(card in chosen for card in self.cards):
                self.cards.extend(int(c) for c in self.rng.permutation(len(CHESTXRAY14_LABELS)))
            card = next(c for c in self.cards if c not in chosen)
            self.cards.remove(card)
            chosen.append(card)
        return tuple(sorted(CHESTXRAY14_LABELS[c] for c in chosen))  # the release sorts them too


def plan_images(patients: int, seed: int) -> list[PlannedImage]:
    """Patients, follow-ups, demographics, findings and the patient-level test split; no pixels."""
    order = np.random.default_rng([seed, _SPLIT]).permutation(np.arange(1, patients + 1))
    test_patients = set(order[: max(1, round(TEST_PATIENT_FRACTION * patients))].tolist())
    label_rng = np.random.default_rng([seed, _LABELS])
    decks = {True: _LabelDeck(label_rng), False: _LabelDeck(label_rng)}
    plan = []
    for patient in range(1, patients + 1):
        rng = np.random.default_rng([seed, _PATIENT, patient])
        n_images, age = int(rng.integers(1, 4)), int(np.clip(round(rng.normal(47, 17)), 0, 95))
        gender, test = ("M", "F")[int(rng.uniform() < 0.44)], patient in test_patients
        for follow_up in range(n_images):
            no_finding = label_rng.uniform() < NO_FINDING_RATE
            labels = () if no_finding else decks[test].deal(int(label_rng.integers(1, 4)))
            plan.append(PlannedImage(
                patient=patient, follow_up=follow_up, labels=labels, age=min(95, age + follow_up // 2),
                gender=gender, view="PA" if rng.uniform() < 0.6 else "AP",
                spacing=PIXEL_SPACINGS[int(rng.choice(len(PIXEL_SPACINGS), p=SPACING_WEIGHTS))], test=test,
            ))
    return plan


def _boxed_images(plan: list[PlannedImage], seed: int) -> set[str]:
    """Some, not all, of the test images with a boxable finding get boxes, as in the release."""
    eligible = [im.name for im in plan if im.test and any(lb in BOX_FILE_LABEL for lb in im.labels)]
    if len(eligible) < 2:
        return set(eligible)
    k = min(len(eligible) - 1, max(1, round(BOXED_TEST_FRACTION * len(eligible))))
    return set(np.random.default_rng([seed, _BOXED]).choice(eligible, k, replace=False).tolist())


def _is_rgba(index: int, n_images: int) -> bool:
    # The release has a few RGBA PNGs among the grey ones (e.g. 00004882_001.png); keep at least one.
    return index % 50 == min(7, n_images - 1)


def _box_rows(im: PlannedImage, boxes: dict[str, PixelBox], size: int, seed: int) -> list[str]:
    """CSV rows with float boxes: the pixel bounding box widened by random sub-pixel margins."""
    rng = np.random.default_rng([seed, _BOX_JITTER, im.patient, im.follow_up])
    rows = []
    for label in im.labels:
        if label not in BOX_FILE_LABEL or label not in boxes:
            continue
        x, y, w, h = boxes[label]
        left, top, right, bottom = rng.uniform(0.0, 0.5, size=4)
        x0, y0 = max(0.0, x - left), max(0.0, y - top)
        x1, y1 = min(float(size), x + w + right), min(float(size), y + h + bottom)
        coords = ",".join(f"{v:.15g}" for v in (x0, y0, x1 - x0, y1 - y0))
        rows.append(f"{im.name},{BOX_FILE_LABEL[label]},{coords}")
    return rows


def _data_entry_row(im: PlannedImage, size: int) -> str:
    findings = "|".join(im.labels) or CHESTXRAY14_NO_FINDING
    return (f"{im.name},{findings},{im.follow_up},{im.patient},{im.age},{im.gender},{im.view},"
            f"{size},{size},{im.spacing!r},{im.spacing!r}")


def _check_destination(out: Path) -> bool:
    """Refuse to write over a real dataset; return whether ``out`` already holds a synthetic one."""
    ours = holds_synthetic(out)
    if (out / DATA_ENTRY).exists() and not ours:
        raise InputError(f"{out / DATA_ENTRY}: exists without {SYNTHETIC_MARKER}; refusing to overwrite "
                         "what looks like a real ChestX-ray14 copy")
    return ours


def write_chestxray14(out: Path, patients: int, image_size: int = 1024, seed: int = 0) -> None:
    """Write a synthetic ChestX-ray14 of ``patients`` patients (1–3 images each) into ``out``."""
    out = Path(out)
    if patients < 1 or image_size < 32:
        raise InputError(f"synthetic ChestX-ray14 needs patients >= 1 and image_size >= 32, "
                         f"got {patients} and {image_size}")
    rewrite = _check_destination(out)
    begin_writing(out)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_images(patients, seed)
    boxed = _boxed_images(plan, seed)
    box_rows = []
    for index, im in enumerate(tqdm(plan, desc="synth chestxray14", unit="img")):
        pixels, boxes = draw_chest(im.labels, image_size,
                                   np.random.default_rng([seed, _SCENE, im.patient, im.follow_up]),
                                   np.random.default_rng([seed, _GRAIN, im.patient, im.follow_up]))
        png = Image.fromarray(pixels)  # uint8 2-D: grey, colour type 0
        if _is_rgba(index, len(plan)):
            png = png.convert("RGBA")
        png.save(images_dir / im.name, format="PNG", compress_level=1)
        if im.name in boxed:
            box_rows.extend(_box_rows(im, boxes, image_size, seed))
    if rewrite:  # drop images of an earlier, larger synthetic set
        keep = {im.name for im in plan}
        for stale in images_dir.glob("*.png"):
            if stale.name not in keep:
                stale.unlink()
    _write_tables(out, plan, box_rows, image_size)
    finish_writing(out, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "patients": patients,
        "image_size": image_size, "seed": seed, "images": len(plan), "boxes": len(box_rows),
    })


def _write_tables(out: Path, plan: list[PlannedImage], box_rows: list[str], size: int) -> None:
    lines = [DATA_ENTRY_HEADER_LINE, *(_data_entry_row(im, size) for im in plan)]
    write_text(out / DATA_ENTRY, "\n".join(lines) + "\n")
    write_text(out / BBOX_LIST, "\n".join([BBOX_HEADER_LINE, *box_rows]) + "\n")
    for name, test in ((TRAIN_VAL_LIST, False), (TEST_LIST, True)):
        write_text(out / name, "".join(f"{im.name}\n" for im in plan if im.test == test))


def write(out: Path, count: int, image_size: int = 1024, seed: int = 0) -> None:
    """The interface every synthetic writer shares (``dira synth <dataset>``); count = patients here."""
    write_chestxray14(out, patients=count, image_size=image_size, seed=seed)

"""Synthetic CheXpert v1.0 ('small' release) in its on-disk layout, read by the same code as the real set.

It reproduces what a reader of the release meets: the 19-column header; ``Path`` values that start with
``CheXpert-v1.0-small/``; label cells that are strings in four states in train.csv ('1.0', '0.0', '-1.0' =
uncertain, empty = not mentioned) but only '0.0'/'1.0' in valid.csv; lateral views with an empty AP/PA (rarely
LL or RL); a Sex of 'Unknown'; grey JPEGs that are not square; validation patients numbered after the training
ones. It also writes a test set in CheXlocalize's layout (``test/`` and ``test_labels.csv``, Path without the
prefix, only Path and the 14 labels since the real file's other columns are unverified), which the real set
ships separately. The same arguments give byte-identical files: every random stream is keyed by
(seed, purpose, patient, study, view), and JPEGs carry no timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dira import __version__
from dira.data.sources.chexpert import CHEXPERT_LABELS, HEADER_LINE, SYNTHETIC_MARKER, TEST_CSV, TRAIN_CSV, VALID_CSV
from dira.data.synthetic.chexpert_findings import UNCERTAIN_STRENGTH, draw_view
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.errors import InputError
from dira.io import write_text

RELEASE = "CheXpert-v1.0-small"
SPLITS = ("train", "valid", "test")
HELD_OUT_FRACTION = 0.2  # valid and test patients, each, per training patient (the real ratio is far smaller)
MIN_HELD_OUT = 5
LATERAL_RATE = {"train": 0.17, "valid": 0.17, "test": 0.34}  # studies that add a lateral view
ASPECTS = (1.15, 1.3)  # long side / short side; the small release is about 320 × 390
JPEG_QUALITY = 90
# Per-study rates of the cell states (positive, uncertain, negative) in train.csv; the rest stays blank. The
# competition labels are common enough to be learnt from a few hundred images. Valid and test studies are
# positive at positive + uncertain, negative otherwise.
CELL_RATES: dict[str, tuple[float, float, float]] = {
    "Enlarged Cardiomediastinum": (0.06, 0.05, 0.10),
    "Cardiomegaly": (0.18, 0.04, 0.08),
    "Lung Opacity": (0.25, 0.03, 0.04),
    "Lung Lesion": (0.06, 0.01, 0.02),
    "Edema": (0.18, 0.05, 0.10),
    "Consolidation": (0.15, 0.08, 0.10),
    "Pneumonia": (0.05, 0.06, 0.04),
    "Atelectasis": (0.18, 0.10, 0.02),
    "Pneumothorax": (0.08, 0.02, 0.15),
    "Pleural Effusion": (0.25, 0.05, 0.12),
    "Pleural Other": (0.03, 0.01, 0.01),
    "Fracture": (0.04, 0.01, 0.02),
    "Support Devices": (0.30, 0.01, 0.03),
}
assert ("No Finding", *CELL_RATES) == CHEXPERT_LABELS
NOT_PATHOLOGY = frozenset({"No Finding", "Support Devices"})  # No Finding may coexist with a device
CELL_STRENGTH = {"1.0": 1.0, "-1.0": UNCERTAIN_STRENGTH}

# Independent random streams, so that e.g. the image size never changes the labels.
_PATIENT, _LABELS, _IMAGE, _SCENE, _GRAIN = range(5)


@dataclass(frozen=True)
class PlannedImage:
    split: str
    patient: int
    study: int
    view: int
    frontal: bool
    sex: str
    age: int
    projection: str  # the AP/PA cell
    cells: tuple[str, ...]  # the 14 label cells, as written
    aspect: float  # long side / short side
    portrait: bool

    @property
    def id(self) -> str:
        kind = "frontal" if self.frontal else "lateral"
        return f"{self.split}/patient{self.patient:05d}/study{self.study}/view{self.view}_{kind}.jpg"

    def size(self, short: int) -> tuple[int, int]:
        """(width, height) for a short side of ``short`` pixels."""
        long = round(short * self.aspect)
        return (short, long) if self.portrait else (long, short)


def study_cells(rng: np.random.Generator, binary: bool) -> tuple[str, ...]:
    """The 14 label cells of one study: four states for train.csv, radiologist-consensus 0/1 otherwise."""
    cells = {}
    for name, (positive, uncertain, negative) in CELL_RATES.items():
        u = rng.uniform()
        if binary:
            cells[name] = "1.0" if u < positive + uncertain else "0.0"
        else:
            cells[name] = ("1.0" if u < positive else "-1.0" if u < positive + uncertain
                           else "0.0" if u < positive + uncertain + negative else "")
    normal = all(cells[n] in ("", "0.0") for n in CELL_RATES if n not in NOT_PATHOLOGY)
    no_finding = "1.0" if normal else ("0.0" if binary else "")
    return (no_finding, *cells.values())


def _patient_images(split: str, patient: int, seed: int) -> list[PlannedImage]:
    rng = np.random.default_rng([seed, _PATIENT, patient])
    # The release has a single 'Unknown' sex; one in 500 synthetic training patients, starting with the 7th.
    sex = "Unknown" if split == "train" and patient % 500 == 7 else ("Male", "Female")[int(rng.uniform() < 0.45)]
    age = int(np.clip(round(rng.normal(60, 17)), 18, 90))
    n_studies = int(rng.integers(1, 4)) if split == "train" else 1  # valid and test: one study per patient
    images = []
    for study in range(1, n_studies + 1):
        cells = study_cells(np.random.default_rng([seed, _LABELS, patient, study]), binary=split != "train")
        age = min(90, age + int(rng.integers(0, 2)))  # the release caps ages at 90
        lateral = rng.uniform() < LATERAL_RATE[split]
        for view, frontal in enumerate((True, False) if lateral else (True,), start=1):
            view_rng = np.random.default_rng([seed, _IMAGE, patient, study, view])
            if frontal:
                projection = "AP" if view_rng.uniform() < 0.8 else "PA"
            else:
                projection = ("", "LL", "RL")[int(view_rng.choice(3, p=(0.9, 0.05, 0.05)))]
            aspect, portrait = float(view_rng.uniform(*ASPECTS)), bool(view_rng.uniform() < 0.85)
            images.append(PlannedImage(split, patient, study, view, frontal, sex, age, projection, cells, aspect,
                                       portrait))
    return images


def plan_images(patients: int, seed: int) -> list[PlannedImage]:
    """Training patients 1..N, then valid and test patients numbered after them, as in the release; no pixels."""
    held_out = max(MIN_HELD_OUT, round(HELD_OUT_FRACTION * patients))
    first = {"train": 1, "valid": patients + 1, "test": patients + held_out + 1}
    count = {"train": patients, "valid": held_out, "test": held_out}
    return [image for split in SPLITS for patient in range(first[split], first[split] + count[split])
            for image in _patient_images(split, patient, seed)]


def _csv_row(im: PlannedImage) -> str:
    if im.split == "test":  # CheXlocalize: no prefix, Path and labels only
        return ",".join((im.id, *im.cells))
    return ",".join((f"{RELEASE}/{im.id}", im.sex, str(im.age), "Frontal" if im.frontal else "Lateral",
                     im.projection, *im.cells))


def _write_tables(root: Path, plan: list[PlannedImage]) -> None:
    headers = {"train": HEADER_LINE, "valid": HEADER_LINE, "test": ",".join(("Path", *CHEXPERT_LABELS))}
    for split, name in zip(SPLITS, (TRAIN_CSV, VALID_CSV, TEST_CSV), strict=True):
        lines = [headers[split], *(_csv_row(im) for im in plan if im.split == split)]
        write_text(root / name, "\n".join(lines) + "\n")


def _check_destination(out: Path, root: Path) -> bool:
    """Refuse to write over (or into) a real dataset; return whether ``root`` already holds a synthetic one."""
    ours = holds_synthetic(root)
    for folder, mine in ((root, ours), (out, False)):
        for name in (TRAIN_CSV, VALID_CSV):
            if (folder / name).exists() and not mine:
                raise InputError(f"{folder / name}: exists without {SYNTHETIC_MARKER}; refusing to overwrite "
                                 "what looks like a real CheXpert copy")
    return ours


def _drop_stale_images(root: Path, plan: list[PlannedImage]) -> None:
    """After rewriting a synthetic set: remove the images (and emptied folders) of an earlier, larger one."""
    keep = {root / im.id for im in plan}
    for split in SPLITS:
        for stale in sorted((root / split).rglob("*.jpg")):
            if stale not in keep:
                stale.unlink()
        for folder in sorted((root / split).rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def write_chexpert(out: Path, patients: int, image_size: int = 390, seed: int = 0) -> Path:
    """Write ``out/CheXpert-v1.0-small/`` with ``patients`` training patients; return it (the reader's root)."""
    out = Path(out)
    if patients < 2 or image_size < 32:
        raise InputError(f"synthetic CheXpert needs patients >= 2 and image_size >= 32, "
                         f"got {patients} and {image_size}")
    root = out / RELEASE
    rewrite = _check_destination(out, root)
    begin_writing(root)
    plan = plan_images(patients, seed)
    for im in tqdm(plan, desc="synth chexpert", unit="img"):
        width, height = im.size(image_size)
        strengths = {name: CELL_STRENGTH.get(cell, 0.0) for name, cell in zip(CHEXPERT_LABELS, im.cells,
                                                                              strict=True)}
        pixels = draw_view(strengths, im.frontal, width, height,
                           np.random.default_rng([seed, _SCENE, im.patient, im.study, im.view]),
                           np.random.default_rng([seed, _GRAIN, im.patient, im.study, im.view]))
        path = root / im.id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format="JPEG", quality=JPEG_QUALITY)  # uint8 2-D: 8-bit grey
    if rewrite:
        _drop_stale_images(root, plan)
    _write_tables(root, plan)
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "patients": patients, "image_size": image_size,
        "seed": seed, "images": {split: sum(im.split == split for im in plan) for split in SPLITS},
    })
    return root


def write(out: Path, count: int, image_size: int = 390, seed: int = 0) -> None:
    """The interface every synthetic writer shares (``dira synth <dataset>``); count = training patients here."""
    write_chexpert(out, patients=count, image_size=image_size, seed=seed)

"""Synthetic SIIM-ACR Pneumothorax (stage 1) in the released layout, read by the same code as the real set.

It reproduces what a reader of the release can trip over: the three-level UID tree with ImageId =
SOPInstanceUID = file stem, the space before ``EncodedPixels`` in the header and before every value,
``-1`` for negatives, relative column-major RLE, and images whose pneumothorax is listed over several
rows (one per lung, or one region cut in two) that must be united. Each positive image shows its
pneumothorax exactly where its mask is (``segmentation_scenes``). The DICOMs are 8-bit MONOCHROME2 CR
chest images, uncompressed Explicit VR Little Endian; the same arguments give byte-identical files.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from tqdm import tqdm

from dira import __version__
from dira.data.sources.rle import encode_rle
from dira.data.sources.siim import RLE_COLUMNS, RLE_CSV, SYNTHETIC_MARKER, TRAIN_DICOMS
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.synthetic.segmentation_scenes import add_pneumothorax, draw_thorax, expose
from dira.errors import InputError
from dira.io import write_text

POSITIVE_FRACTION = 0.3  # the release: 2,669 of 12,047 images
UID_ROOT = "1.2.276.0.7230010.3.1"  # the release's DCMTK root; .2 study, .3 series, .4 instance
PIXEL_SPACINGS = (0.139, 0.143, 0.168, 0.171)  # mm at the release's 1024 px
HEADER_LINE = f"{RLE_COLUMNS[0]}, {RLE_COLUMNS[1]}"

_PLAN, _SCENE, _GRAIN = range(3)  # independent random streams


@dataclass(frozen=True)
class PlannedImage:
    number: int
    uid_suffix: str  # shared by the study, series and instance UIDs, as in the release
    patient: str  # an anonymous UUID
    sides: tuple[int, ...]  # lungs with a pneumothorax (0 = image left); () for a negative
    split_region: bool  # a one-sided pneumothorax listed as two rows (upper and lower part)
    age: int
    sex: str
    view: str
    spacing: float  # mm at 1024 px

    def uid(self, level: int) -> str:
        return f"{UID_ROOT}.{level}.{self.uid_suffix}.{959090 - 4 + level}"

    @property
    def image_id(self) -> str:
        return self.uid(4)


def plan_images(count: int, seed: int) -> list[PlannedImage]:
    """Which images are positive, and how their masks are listed: a fixed share, dealt at random."""
    rng = np.random.default_rng([seed, _PLAN])
    n_positive = min(count - 1, max(1, round(POSITIVE_FRACTION * count)))
    positives = [int(i) for i in rng.permutation(count)[:n_positive]]
    # Of the positives in random order: every 4th in both lungs, the next every 4th cut into two rows.
    kinds = {image: rank % 4 for rank, image in enumerate(positives)}
    plan = []
    for number in range(count):
        kind = kinds.get(number)
        side = int(rng.integers(2))
        plan.append(PlannedImage(
            number=number, uid_suffix=f"{8323329 + number % 7}.{1000 + number}.{1517874000 + int(rng.integers(9999))}",
            patient=str(uuid.UUID(bytes=rng.bytes(16))),
            sides=() if kind is None else (0, 1) if kind == 0 else (side,), split_region=kind == 1,
            age=int(np.clip(round(rng.normal(47, 16)), 18, 90)), sex="M" if rng.uniform() < 0.55 else "F",
            view="PA" if rng.uniform() < 0.55 else "AP", spacing=float(rng.choice(PIXEL_SPACINGS)),
        ))
    return plan


def _mask_rows(regions: list[np.ndarray], split_region: bool) -> list[str]:
    """EncodedPixels of each row: one per region, a region cut at its middle row when asked; '-1' if none."""
    if not regions:
        return ["-1"]
    if split_region:
        region = regions[0]
        rows = np.flatnonzero(region.any(axis=1))
        cut = (rows[0] + rows[-1] + 1) // 2
        upper, lower = region.copy(), region.copy()
        upper[cut:], lower[:cut] = False, False
        regions = [upper, lower]
    return [encode_rle(region) for region in regions if region.any()]


def _dicom(im: PlannedImage, pixels: np.ndarray) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = im.image_id
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, im.image_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = im.uid(2), im.uid(3)
    ds.PatientName, ds.PatientID = im.patient, im.patient
    ds.PatientAge, ds.PatientSex = f"{im.age:03d}Y", im.sex
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", im.view
    ds.StudyDescription, ds.SeriesNumber, ds.InstanceNumber = "Synthetic chest radiograph (dira)", 1, 1
    spacing = round(im.spacing * 1024 / pixels.shape[0], 6)  # the same body at any matrix size
    ds.PixelSpacing = [spacing, spacing]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels, np.uint8).tobytes()
    return ds


def _check_destination(out: Path) -> bool:
    """Refuse to write over a real dataset; return whether ``out`` already holds a synthetic one."""
    ours = holds_synthetic(out)
    if (out / RLE_CSV).exists() and not ours:
        raise InputError(f"{out / RLE_CSV}: exists without {SYNTHETIC_MARKER}; refusing to overwrite "
                         "what looks like a real SIIM-ACR copy")
    return ours


def write_siim(out: Path, count: int, image_size: int = 1024, seed: int = 0) -> None:
    """Write ``count`` synthetic DICOMs of image_size² pixels and their train-rle.csv into ``out``."""
    out = Path(out)
    if count < 3 or image_size < 32:
        raise InputError(f"synthetic SIIM-ACR needs count >= 3 and image_size >= 32, got {count} and {image_size}")
    if _check_destination(out):
        shutil.rmtree(out / TRAIN_DICOMS, ignore_errors=True)  # ours: drop images of an earlier set
    begin_writing(out)
    plan, lines = plan_images(count, seed), [HEADER_LINE]
    for im in tqdm(plan, desc="synth siim", unit="img"):
        scene = draw_thorax(image_size, image_size, np.random.default_rng([seed, _SCENE, im.number]))
        regions = [add_pneumothorax(scene, side, np.random.default_rng([seed, _SCENE, im.number, side]))
                   for side in im.sides]
        pixels = expose(scene, np.random.default_rng([seed, _GRAIN, im.number]))
        folder = out / TRAIN_DICOMS / im.uid(2) / im.uid(3)
        folder.mkdir(parents=True, exist_ok=True)
        _dicom(im, pixels).save_as(folder / f"{im.image_id}.dcm", enforce_file_format=True)
        lines.extend(f"{im.image_id}, {encoded}" for encoded in _mask_rows(regions, im.split_region))
    write_text(out / RLE_CSV, "\n".join(lines) + "\n")
    finish_writing(out, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "images": count, "image_size": image_size,
        "seed": seed, "positives": sum(bool(im.sides) for im in plan),
        "rows": len(lines) - 1,
    })


def write(out: Path, count: int, image_size: int = 1024, seed: int = 0) -> None:
    """The interface every synthetic writer shares (``dira synth siim``); count = DICOM images."""
    write_siim(out, count=count, image_size=image_size, seed=seed)

"""Synthetic LIDC-IDRI in TCIA's classic layout, read by the same code as the real set.

``write(out, count, image_size, seed)`` creates, for ``count`` patients, ``LIDC-IDRI/LIDC-IDRI-dddd/<StudyUID>/
<SeriesUID>/*.dcm`` (CT Image Storage, one file per slice, uint16 stored values with RescaleSlope 1 and
RescaleIntercept -1024 as in most LIDC series, ImagePositionPatient / ImageOrientationPatient / PixelSpacing
/ SliceThickness, InstanceNumber counted from the head down as LIDC does, file names in an order unrelated
to position) and the reads ``tcia-lidc-xml/<dir>/NNN.xml`` (``LidcReadMessage``, four reading sessions).
Each scan is a small thorax (``image_size`` px square, 20-40 slices 1.25-2.5 mm thick, 0.6-0.9 mm pixels):
soft tissue, two air-filled lungs, and solid spherical nodules at known world positions, each outlined by
1-4 readers (slightly different radii, same centre); some scans also have a < 3 mm nodule marked by one
point and a ``nonNodule``. The first patient also has a CR radiograph series and an ``IdriReadMessage``
XML, which the reader must skip. The same arguments give byte-identical files; a marker JSON listing the
nodules is written last.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from tqdm import tqdm

from dira import __version__
from dira.data.sources.lidc import DICOM_FOLDER, SYNTHETIC_MARKER, XML_FOLDER
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.volumes.geometry import Geometry, index_to_world, world_to_index
from dira.errors import InputError
from dira.io import atomic_path, write_text

UID_PREFIX = "1.3.6.1.4.1.14519.5.2.1.6279.6001."  # LIDC-IDRI's UID root
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
THICKNESSES = (1.25, 1.5, 2.0, 2.5)
READERS = 4
INTERCEPT = -1024
HU = {"air": -1000.0, "tissue": 40.0, "lung": -850.0, "nodule": 30.0}
NOISE_HU = 10.0
EDGE_MM = 0.5


@dataclass(frozen=True)
class Nodule:
    centre: tuple[float, float, float]  # world mm x y z
    diameter: float  # mm
    radii: dict[int, float]  # reader -> outlined radius (mm); one reader with a point for a small nodule


@dataclass(frozen=True)
class PlannedPatient:
    patient: str
    study_uid: str
    series_uid: str
    geometry: Geometry
    lungs: tuple[tuple[float, float, float, float], ...]  # (cx, cy, semi-axis x, semi-axis y)
    body: tuple[float, float, float, float]
    nodules: tuple[Nodule, ...]
    small: tuple[float, float, float] | None  # a < 3 mm nodule, one reader's point
    sop_uids: tuple[str, ...]  # by slice index k
    names: tuple[str, ...]  # file name of slice k


def _uid(seed: int, *parts: object) -> str:
    return generate_uid(UID_PREFIX, entropy_srcs=[str(seed), *map(str, parts)])


def _plan(rng: np.random.Generator, seed: int, n: int, image_size: int) -> PlannedPatient:
    pixel = round(float(rng.uniform(0.6, 0.9)), 4)
    thickness = float(rng.choice(THICKNESSES))
    slices = int(rng.integers(20, 41))
    size = (image_size, image_size, slices)
    half = pixel * (image_size - 1) / 2
    origin = (round(-half + float(rng.uniform(-5, 5)), 3), round(-half + float(rng.uniform(-5, 5)), 3),
              round(float(rng.uniform(-250, -100)), 3))
    geometry = Geometry(origin, (pixel, pixel, thickness), ((1, 0, 0), (0, 1, 0), (0, 0, 1)), size)
    low = index_to_world(geometry, np.zeros(3))
    high = index_to_world(geometry, np.asarray(size) - 1)
    middle, fov = (low + high) / 2, float(high[0] - low[0])
    body = (float(middle[0]), float(middle[1]), 0.46 * fov, 0.4 * fov)
    lungs = tuple((float(middle[0] + side * 0.21 * fov), float(middle[1]), 0.17 * fov, 0.3 * fov) for side in (-1, 1))
    nodules: list[Nodule] = []
    want = int(rng.integers(1, 4))
    for _ in range(40):
        if len(nodules) == want:
            break
        diameter = round(float(rng.uniform(4.0, min(9.0, 0.25 * fov))), 3)
        r = diameter / 2
        cx, cy, ax, ay = lungs[int(rng.integers(2))]
        u = rng.uniform(-0.5, 0.5, 2)
        centre = (round(cx + u[0] * (ax - r), 3), round(cy + u[1] * (ay - r), 3),
                  round(float(rng.uniform(low[2] + r + 2, high[2] - r - 2)), 3))
        if any(np.linalg.norm(np.subtract(centre, m.centre)) < r + m.diameter / 2 + 4 for m in nodules):
            continue
        readers = sorted(int(v) for v in rng.choice(READERS, int(rng.integers(1, READERS + 1)), replace=False))
        nodules.append(Nodule(centre, diameter, {k: round(r * float(rng.uniform(0.9, 1.1)), 3) for k in readers}))
    small = None
    if rng.uniform() < 0.5:
        cx, cy, ax, ay = lungs[int(rng.integers(2))]
        candidate = (cx, cy + 0.6 * ay, float(rng.uniform(low[2] + 2, high[2] - 2)))
        if all(np.linalg.norm(np.subtract(candidate, m.centre)) > m.diameter / 2 + 6 for m in nodules):
            small = candidate
    names = tuple(f"{int(v) + 1:06d}.dcm" for v in rng.permutation(slices))
    sops = tuple(_uid(seed, "sop", n, k) for k in range(slices))
    return PlannedPatient(f"LIDC-IDRI-{n + 1:04d}", _uid(seed, "study", n), _uid(seed, "series", n), geometry,
                          lungs, body, tuple(nodules), small, sops, names)


def plan_patients(count: int, image_size: int, seed: int) -> list[PlannedPatient]:
    """Every patient's scan and nodules, from (seed, patient number) alone."""
    return [_plan(np.random.default_rng([seed, n]), seed, n, image_size) for n in range(count)]


def draw(plan: PlannedPatient, rng: np.random.Generator) -> np.ndarray:
    """The scan's HU (z, y, x) float32: body, lungs, nodules with a partial-volume edge, noise."""
    g = plan.geometry
    k, j, i = np.meshgrid(*(np.arange(n) for n in g.array_shape), indexing="ij")
    world = index_to_world(g, np.stack([i, j, k], axis=-1))
    x, y = world[..., 0], world[..., 1]

    def paint(volume: np.ndarray, distance: np.ndarray, hu: float) -> None:
        volume += (hu - volume) * np.clip(0.5 - distance / EDGE_MM, 0, 1)

    volume = np.full(g.array_shape, HU["air"], np.float32)
    bx, by, ba, bb = plan.body
    paint(volume, (np.hypot((x - bx) / ba, (y - by) / bb) - 1) * min(ba, bb), HU["tissue"])
    for cx, cy, ax, ay in plan.lungs:
        paint(volume, (np.hypot((x - cx) / ax, (y - cy) / ay) - 1) * min(ax, ay), HU["lung"])
    for nodule in plan.nodules:
        paint(volume, np.linalg.norm(world - np.asarray(nodule.centre), axis=-1) - nodule.diameter / 2, HU["nodule"])
    if plan.small is not None:
        paint(volume, np.linalg.norm(world - np.asarray(plan.small), axis=-1) - 1.2, HU["nodule"])
    return volume + NOISE_HU * rng.standard_normal(volume.shape, dtype=np.float32)


def _meta(sop_class: str, sop: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _common(ds: Dataset, plan: PlannedPatient, modality: str) -> None:
    ds.PatientID = ds.PatientName = plan.patient
    ds.StudyDate = ds.SeriesDate = "20000101"
    ds.Modality, ds.Manufacturer = modality, "dira synthetic"
    ds.StudyInstanceUID = plan.study_uid


def _pixels(ds: Dataset, stored: np.ndarray) -> None:
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(stored, "<u2").tobytes()


def _save(ds: Dataset, path: Path) -> None:
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def write_series(folder: Path, plan: PlannedPatient, hu: np.ndarray) -> None:
    """One CT Image Storage file per slice of ``hu`` (z, y, x), named and numbered as planned."""
    g = plan.geometry
    stored = np.clip(np.rint(hu) - INTERCEPT, 0, 4095).astype(np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    nz = g.array_shape[0]
    for k in range(nz):
        ds = Dataset()
        ds.file_meta = _meta(CTImageStorage, plan.sop_uids[k])
        _common(ds, plan, "CT")
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, plan.sop_uids[k]
        ds.SeriesInstanceUID, ds.SeriesNumber = plan.series_uid, 3000566
        ds.InstanceNumber = nz - k  # LIDC counts from the head (highest z) down
        ds.ImagePositionPatient = [f"{v:.3f}" for v in index_to_world(g, np.array([0.0, 0.0, k]))]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [f"{g.spacing[1]:g}", f"{g.spacing[0]:g}"]
        ds.SliceThickness = f"{g.spacing[2]:g}"
        ds.SliceLocation = f"{index_to_world(g, np.array([0.0, 0.0, k]))[2]:.3f}"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = INTERCEPT, 1, "HU"
        ds.KVP, ds.ConvolutionKernel = 120, "STANDARD"
        _pixels(ds, stored[k])
        _save(ds, folder / plan.names[k])


def write_radiograph(folder: Path, plan: PlannedPatient, seed: int) -> None:
    """A CR series (LIDC holds some): a CT reader must skip it."""
    sop = _uid(seed, "cr", plan.patient)
    ds = Dataset()
    ds.file_meta = _meta(CR_STORAGE, sop)
    _common(ds, plan, "CR")
    ds.SOPClassUID, ds.SOPInstanceUID = CR_STORAGE, sop
    ds.SeriesInstanceUID, ds.InstanceNumber = _uid(seed, "cr series", plan.patient), 1
    _pixels(ds, np.full((16, 16), 1000, np.uint16))
    folder.mkdir(parents=True, exist_ok=True)
    _save(ds, folder / "000001.dcm")


def _roi(z: float, sop: str, points: list[tuple[int, int]], inclusion: bool = True) -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>\n" for x, y in points)
    return (f"<roi>\n<imageZposition>{z:.6f}</imageZposition>\n<imageSOP_UID>{sop}</imageSOP_UID>\n"
            f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>\n{edges}</roi>\n")


def outline(plan: PlannedPatient, centre: tuple[float, float, float], radius: float) -> list[tuple[int, float, list]]:
    """(slice k, z, pixel points) of a sphere's outline on every slice it crosses, as a reader draws it."""
    g = plan.geometry
    ci, cj, _ = world_to_index(g, np.asarray(centre))
    rois = []
    for k in range(g.array_shape[0]):
        z = float(index_to_world(g, np.array([0.0, 0.0, k]))[2])
        d = z - centre[2]
        if abs(d) >= radius:
            continue
        r = np.sqrt(radius ** 2 - d ** 2) / g.spacing[0]
        angles = np.linspace(0, 2 * np.pi, max(8, int(np.ceil(4 * np.pi * r))), endpoint=False)
        points: list[tuple[int, int]] = []
        for a in angles:
            p = (int(np.rint(ci + r * np.cos(a))), int(np.rint(cj + r * np.sin(a))))
            if not points or p != points[-1]:
                points.append(p)
        if len(points) > 1 and points[0] == points[-1]:
            points.pop()
        rois.append((k, z, points))
    return rois


def read_xml(plan: PlannedPatient) -> str:
    """The four reading sessions of one scan, LIDC's ``LidcReadMessage`` (default namespace)."""
    sessions = []
    for reader in range(READERS):
        body = []
        for n, nodule in enumerate(plan.nodules):
            if reader not in nodule.radii:
                continue
            rois = "".join(_roi(z, plan.sop_uids[k], points) for k, z, points in
                           outline(plan, nodule.centre, nodule.radii[reader]))
            body.append(f"<unblindedReadNodule>\n<noduleID>Nodule {n + 1:03d}</noduleID>\n<characteristics>\n"
                        f"<subtlety>4</subtlety>\n<malignancy>{1 + (n + reader) % 5}</malignancy>\n"
                        f"</characteristics>\n{rois}</unblindedReadNodule>\n")
        if plan.small is not None and reader == 0:
            i, j, k = np.rint(world_to_index(plan.geometry, np.asarray(plan.small))).astype(int)
            z = float(index_to_world(plan.geometry, np.array([0.0, 0.0, k]))[2])
            body.append(f"<unblindedReadNodule>\n<noduleID>small-1</noduleID>\n"
                        f"{_roi(z, plan.sop_uids[k], [(int(i), int(j))])}</unblindedReadNodule>\n")
            body.append(f"<nonNodule>\n<nonNoduleID>nn-1</nonNoduleID>\n<imageZposition>{z:.6f}</imageZposition>\n"
                        f"<imageSOP_UID>{plan.sop_uids[k]}</imageSOP_UID>\n<locus><xCoord>3</xCoord>"
                        f"<yCoord>3</yCoord></locus>\n</nonNodule>\n")
        sessions.append(f"<readingSession>\n<annotationVersion>3.12</annotationVersion>\n"
                        f"<servicingRadiologistID>{1000 + reader}</servicingRadiologistID>\n"
                        f"{''.join(body)}</readingSession>\n")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage uid="1.3.6.1.4.1.14519.5.2.1.6279.6001.1" '
            'xmlns="http://www.nih.gov" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n<ResponseHeader>\n'
            "<Version>1.8.1</Version>\n<TaskDescription>Second unblinded read</TaskDescription>\n"
            f"<CtImageFile>removed</CtImageFile>\n<SeriesInstanceUid>{plan.series_uid}</SeriesInstanceUid>\n"
            f"<StudyInstanceUID>{plan.study_uid}</StudyInstanceUID>\n</ResponseHeader>\n"
            f"{''.join(sessions)}</LidcReadMessage>\n")


CXR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<IdriReadMessage xmlns="http://www.nih.gov/idri">\n'
           "<ResponseHeader><SeriesInstanceUid>0</SeriesInstanceUid></ResponseHeader>\n</IdriReadMessage>\n")


def _clear(root: Path) -> None:
    """Drop an earlier synthetic set; refuse to touch what looks like a real copy."""
    ours = [root / DICOM_FOLDER, root / XML_FOLDER]
    if holds_synthetic(root):
        for path in ours:
            if path.exists():
                shutil.rmtree(path)
    elif any(path.exists() for path in ours):
        raise InputError(f"{root}: holds LIDC-IDRI files without {SYNTHETIC_MARKER}; refusing to overwrite what "
                         "looks like a real LIDC-IDRI copy")


def write_lidc(out: Path, count: int, image_size: int, seed: int) -> Path:
    """Write ``count`` patients of ``image_size``² pixels under ``out`` (the LIDC root); return it."""
    root = Path(out)
    if count < 1 or not 32 <= image_size <= 512:
        raise InputError(f"synthetic LIDC-IDRI needs count >= 1 and 32 <= image_size <= 512, got {count} and "
                         f"{image_size}")
    _clear(root)
    begin_writing(root)
    plans = plan_patients(count, image_size, seed)
    listed = {}
    for n, plan in enumerate(tqdm(plans, desc="synth lidc", unit="scan")):
        patient = root / DICOM_FOLDER / plan.patient
        write_series(patient / plan.study_uid / plan.series_uid, plan, draw(plan, np.random.default_rng([seed, n, 1])))
        write_text(root / XML_FOLDER / f"{185 + n // 10}" / f"{n + 1:03d}.xml", read_xml(plan))
        listed[plan.series_uid] = {"patient": plan.patient, "nodules": [
            {"centre": list(m.centre), "diameter": m.diameter, "readers": sorted(m.radii)} for m in plan.nodules],
            "small": None if plan.small is None else list(plan.small)}
    write_radiograph(root / DICOM_FOLDER / plans[0].patient / plans[0].study_uid / "cr", plans[0], seed)
    write_text(root / XML_FOLDER / "cxr" / "001.xml", CXR_XML)
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "patients": count, "image_size": image_size,
        "seed": seed, "series": listed})
    return root


def write(out: Path, count: int, image_size: int, seed: int) -> None:
    """The interface every synthetic writer shares (``dira synth lidc``); count = patients."""
    write_lidc(out, count=count, image_size=image_size, seed=seed)

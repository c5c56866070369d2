"""A CT series folder (one DICOM file per slice) as one volume in HU with its geometry, read with pydicom.

File names and ``InstanceNumber`` say nothing reliable about where a slice lies (LIDC numbers its slices
from the head down, and its file names need not follow either), so slices are ordered by
``ImagePositionPatient`` projected on the slice normal (the cross product of the two
``ImageOrientationPatient`` cosines). Some LIDC series hold two files at one position: the one with the
lower ``InstanceNumber`` is kept, as pylidc does, and the pair is reported in :attr:`Series.duplicates`;
the dropped file's SOPInstanceUID still maps to the slice kept, so a read that names it is not lost.
A gap in the positions larger than 1.5x the median step is a missing slice: InputError naming the folder
(a volume built across it would put every slice beyond it at the wrong place).

Stored values go to HU through each slice's ``RescaleSlope`` / ``RescaleIntercept``: int16 when both are
integers and the result fits, float32 otherwise. The geometry is ITK's: the origin is the first slice's
``ImagePositionPatient``, the direction matrix's columns are the row cosine, the column cosine and the
normal, the spacing is ``PixelSpacing`` (given row spacing first, i.e. y before x) and the median step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from dira.data.volumes.geometry import Geometry
from dira.errors import InputError

GAP_FACTOR = 1.5  # a step this many times the median one means a slice is missing
_SAME_POSITION_MM = 1e-3
_REQUIRED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "SOPInstanceUID")


@dataclass(frozen=True)
class Series:
    folder: Path
    volume: np.ndarray  # (z, y, x) HU, int16 or float32
    geometry: Geometry
    sop_index: dict[str, int]  # SOPInstanceUID -> slice index k (dropped duplicates -> the slice kept)
    files: tuple[Path, ...]  # the file of each slice, in slice order
    duplicates: tuple[tuple[Path, Path], ...]  # (dropped, kept) for each repeated position

    @property
    def slice_z(self) -> np.ndarray:
        """World z (mm) of each slice's first voxel, what LIDC's ``imageZposition`` gives."""
        return self.geometry.origin[2] + np.arange(self.geometry.size[2]) * self.geometry.index_to_world_matrix[2, 2]


def dicom_files(folder: Path) -> list[Path]:
    """The ``*.dcm`` files of a series folder, sorted by name (LIDC keeps its XML read beside them)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() == ".dcm")


def read_header(path: Path) -> pydicom.Dataset:
    """A file's header without its pixels; InputError naming the file when it is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable DICOM file ({err})") from None


def _read(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable DICOM file ({err})") from None
    missing = [tag for tag in _REQUIRED if tag not in ds]
    if missing or "PixelData" not in ds:
        raise InputError(f"{path}: not a CT image slice (missing {', '.join(missing or ['PixelData'])})")
    return ds


def _normal(orientation: np.ndarray) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


def read_series(folder: Path, files: Sequence[Path] | None = None) -> Series:
    """Read every slice of ``folder`` (or the given ``files`` of it) into one HU volume; see the module docstring."""
    folder = Path(folder)
    paths = list(files) if files is not None else dicom_files(folder)
    if len(paths) < 2:
        raise InputError(f"{folder}: a CT series needs at least 2 DICOM slices, found {len(paths)}")
    slices = [_read(p) for p in paths]
    first = slices[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    pixel = np.asarray(first.PixelSpacing, dtype=float)
    shape = (int(first.Rows), int(first.Columns))
    for path, ds in zip(paths, slices, strict=True):
        if (not np.allclose(np.asarray(ds.ImageOrientationPatient, float), orientation, atol=1e-4)
                or not np.allclose(np.asarray(ds.PixelSpacing, float), pixel, atol=1e-4)
                or (int(ds.Rows), int(ds.Columns)) != shape):
            raise InputError(f"{path}: orientation, pixel spacing or size differs from {paths[0].name} in {folder}")
    normal = _normal(orientation)
    position = np.array([np.asarray(ds.ImagePositionPatient, float) @ normal for ds in slices])
    instance = np.array([int(getattr(ds, "InstanceNumber", 0) or 0) for ds in slices])
    order = np.lexsort((instance, position))  # by position, then the lower InstanceNumber first
    kept: list[int] = []
    duplicates: list[tuple[Path, Path]] = []
    sop_index: dict[str, int] = {}
    for n in order:
        if kept and abs(position[n] - position[kept[-1]]) < _SAME_POSITION_MM:
            duplicates.append((paths[n], paths[kept[-1]]))
            sop_index.setdefault(str(slices[n].SOPInstanceUID), len(kept) - 1)
            continue
        kept.append(int(n))
        sop_index[str(slices[n].SOPInstanceUID)] = len(kept) - 1
    if len(kept) < 2:
        raise InputError(f"{folder}: all {len(paths)} slices lie at one position")
    steps = np.diff(position[kept])
    median = float(np.median(steps))
    gap = int(np.argmax(steps))
    if steps[gap] > GAP_FACTOR * median:
        raise InputError(f"{folder}: missing slice between {paths[kept[gap]].name} and {paths[kept[gap + 1]].name} "
                         f"(a {steps[gap]:.3g} mm gap, the median step is {median:.3g} mm)")
    volume = _hu([slices[n] for n in kept], [paths[n] for n in kept], shape)
    direction = np.column_stack([orientation[:3], orientation[3:], normal])
    geometry = Geometry(tuple(float(v) for v in slices[kept[0]].ImagePositionPatient),
                        (float(pixel[1]), float(pixel[0]), median), tuple(map(tuple, direction)),
                        (shape[1], shape[0], len(kept)))
    return Series(folder, volume, geometry, sop_index, tuple(paths[n] for n in kept), tuple(duplicates))


def _hu(slices: list[pydicom.Dataset], paths: list[Path], shape: tuple[int, int]) -> np.ndarray:
    """Stored values -> HU slice by slice; int16 when every slope and intercept is an integer and HU fits."""
    rescale = np.array([(float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0))
                        for ds in slices])
    integral = bool(np.all(rescale == np.round(rescale)))
    volume = np.empty((len(slices), *shape), np.int32 if integral else np.float32)
    for k, (ds, path) in enumerate(zip(slices, paths, strict=True)):
        try:
            stored = ds.pixel_array
        except Exception as err:  # pydicom raises many kinds for broken or unsupported pixel data
            raise InputError(f"{path}: pixel data cannot be decoded ({err})") from None
        if stored.shape != shape:
            raise InputError(f"{path}: pixel data is {stored.shape}, the header says {shape}")
        slope, intercept = rescale[k]
        if integral:
            volume[k] = stored.astype(np.int32) * int(slope) + int(intercept)
        else:
            volume[k] = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    if integral and volume.min() >= np.iinfo(np.int16).min and volume.max() <= np.iinfo(np.int16).max:
        return volume.astype(np.int16)
    return volume.astype(np.float32)

"""NIfTI-1 volumes (LiTS, BraTS) in this package's conventions: a (z, y, x) array and its LPS :class:`Geometry`.

A NIfTI affine maps voxel index ``(i, j, k)`` to RAS+ millimetres; :class:`Geometry` (as LUNA16's MetaImage
headers) speaks LPS, so both the direction and the origin are negated in x and y (:func:`geometry_of`,
:func:`affine_of` back). Spacing, dtype and orientation vary between LiTS cases and some are flipped, so a
mask can be used only after checking it lies on its image's grid (:func:`check_same_grid`) and after
both are turned the same way (:func:`reorient`). The canonical orientation is LPS+, LUNA16's usual one
(direction ≈ identity: index i runs to the patient's left, j to posterior, k to superior). Reorienting only
flips and permutes axes, so every voxel keeps its world position exactly; nothing is resampled.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from dira.data.volumes.geometry import Geometry
from dira.errors import InputError

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
AFFINE_ATOL_MM = 1e-3  # affines of an image and its mask may differ by float rounding, never by more


@dataclass(frozen=True)
class Volume:
    """One NIfTI file as read: the (z, y, x) array, its geometry, and the stored RAS affine."""

    path: Path
    array: np.ndarray
    geometry: Geometry
    affine: np.ndarray  # 4x4 RAS+, as nibabel's ``img.affine`` (sform when set, else qform)


def geometry_of(affine: np.ndarray, shape_ijk: Sequence[int]) -> Geometry:
    """The LPS geometry of a volume with a RAS+ ``affine`` and ``shape_ijk`` (NIfTI's axis order)."""
    affine = np.asarray(affine, dtype=float)
    matrix = LPS_FROM_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if not np.isfinite(matrix).all() or (spacing <= 0).any():
        raise ValueError(f"affine has a degenerate axis: {affine.tolist()}")
    return Geometry(LPS_FROM_RAS @ affine[:3, 3], spacing, matrix / spacing, tuple(int(n) for n in shape_ijk[:3]))


def affine_of(geometry: Geometry) -> np.ndarray:
    """The RAS+ NIfTI affine of an LPS geometry (the inverse of :func:`geometry_of`)."""
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ geometry.index_to_world_matrix
    affine[:3, 3] = LPS_FROM_RAS @ np.asarray(geometry.origin)
    return affine


def _load(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        raise InputError(f"{path}: NIfTI file not found")
    try:
        image = nib.load(path, mmap=False)  # a memory map would break when the file is replaced while in use
        if len(image.shape) < 3 or any(n != 1 for n in image.shape[3:]):
            raise InputError(f"{path}: expected a 3-D volume, got shape {image.shape}")
        _check_size(path, image)
        return image
    except InputError:
        raise
    except Exception as err:  # nibabel's ImageFileError, a truncated gzip (EOFError, zlib.error), OSError ...
        raise InputError(f"{path}: unreadable NIfTI ({type(err).__name__}: {err})") from None


def _check_size(path: Path, image: nib.Nifti1Image) -> None:
    """An uncompressed file longer than its header's voxels: nibabel would silently read a smaller volume."""
    if path.name.lower().endswith(".gz"):
        return  # the stored size says nothing; a short stream fails when decoded
    header = image.header
    offset = getattr(image.dataobj, "offset", None) or header.get_data_offset()
    need = int(offset) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
    have = path.stat().st_size
    if have > need:
        raise InputError(f"{path}: {have} bytes, but its header declares {image.shape} voxels of "
                         f"{header.get_data_dtype()} ending at byte {need} (a header that disagrees with the data)")


def _array(path: Path, image: nib.Nifti1Image, labels: bool) -> np.ndarray:
    try:
        data = image.get_fdata(dtype=np.float32) if not labels else np.asanyarray(image.dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise InputError(f"{path}: truncated or unreadable voxel data ({type(err).__name__}: {err})") from None
    data = data.reshape(data.shape[:3])
    if labels:
        if data.dtype.kind == "f" and (not np.isfinite(data).all() or (data != np.round(data)).any()):
            raise InputError(f"{path}: label map has non-integer values")
        if data.size and (data.min() < 0 or data.max() > 255):
            raise InputError(f"{path}: label values must lie in 0..255, got {data.min()}..{data.max()}")
        data = data.astype(np.uint8)
    elif not np.isfinite(data).all():
        raise InputError(f"{path}: image holds NaN or infinite voxels")
    return np.ascontiguousarray(data.transpose(2, 1, 0))  # (i, j, k) -> (z, y, x)


def read_nifti(path: Path, *, labels: bool = False) -> Volume:
    """Read a 3-D NIfTI image as float32 (scaling applied), or a label map as uint8 (``labels``).

    The array is (z, y, x), in the file's own orientation; InputError naming the file when it is unusable.
    """
    path = Path(path)
    image = _load(path)
    try:
        geometry = geometry_of(image.affine, image.shape)
    except ValueError as err:
        raise InputError(f"{path}: unusable affine ({err})") from None
    return Volume(path, _array(path, image, labels), geometry, np.asarray(image.affine, dtype=float))


def check_same_grid(image: Volume, other: Volume) -> None:
    """InputError naming both files unless ``other`` (a mask, a second modality) lies on ``image``'s voxels."""
    if other.array.shape != image.array.shape:
        raise InputError(f"{other.path}: shape {other.geometry.size} (x, y, z) differs from its image {image.path} "
                         f"({image.geometry.size})")
    if not np.allclose(other.affine, image.affine, rtol=0, atol=AFFINE_ATOL_MM):
        worst = float(np.abs(other.affine - image.affine).max())
        raise InputError(f"{other.path}: affine differs from its image {image.path} by up to {worst:.4g} mm "
                         f"({np.round(other.affine[:3], 4).tolist()} vs {np.round(image.affine[:3], 4).tolist()})")


def _lps_affine(geometry: Geometry) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = geometry.index_to_world_matrix
    affine[:3, 3] = geometry.origin
    return affine


def reorient(arrays: Sequence[np.ndarray], geometry: Geometry) -> tuple[list[np.ndarray], Geometry]:
    """The (z, y, x) ``arrays`` (all on ``geometry``'s grid) turned to LPS+, and their new geometry.

    Axes are flipped and permuted only: the voxel at a world point before is at the same point after.
    """
    affine = _lps_affine(geometry)
    ornt = io_orientation(affine)
    out = []
    for array in arrays:
        if array.shape != geometry.array_shape:
            raise ValueError(f"array of shape {array.shape} is not on the grid {geometry.array_shape} (z, y, x)")
        turned = apply_orientation(np.asarray(array).transpose(2, 1, 0), ornt)
        out.append(np.ascontiguousarray(turned.transpose(2, 1, 0)))
    new = affine @ inv_ornt_aff(ornt, geometry.size)
    spacing = np.linalg.norm(new[:3, :3], axis=0)
    size = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        size[int(target)] = geometry.size[axis]  # input axis ``axis`` becomes output axis ``target``
    return out, Geometry(new[:3, 3], spacing, new[:3, :3] / spacing, size)


def read_aligned(image_path: Path, mask_paths: Sequence[Path], *,
                 image_paths: Sequence[Path] = ()) -> tuple[list[np.ndarray], list[np.ndarray], Geometry]:
    """Images (``image_path`` then ``image_paths``) and label maps, checked to share a grid, reoriented together.

    Returns (float32 images, uint8 label maps, the canonical geometry); InputError naming the files.
    """
    first = read_nifti(image_path)
    images = [first] + [read_nifti(p) for p in image_paths]
    masks = [read_nifti(p, labels=True) for p in mask_paths]
    for other in [*images[1:], *masks]:
        check_same_grid(first, other)
    turned, geometry = reorient([v.array for v in [*images, *masks]], first.geometry)
    return turned[:len(images)], turned[len(images):], geometry


def write_nifti(path: Path, array_zyx: np.ndarray, geometry: Geometry) -> None:
    """Write a (z, y, x) array as NIfTI-1 (``.nii`` or ``.nii.gz``) with sform and qform set from ``geometry``."""
    if array_zyx.shape != geometry.array_shape:
        raise ValueError(f"array {array_zyx.shape} is not on the grid {geometry.array_shape} (z, y, x)")
    affine = affine_of(geometry)
    image = nib.Nifti1Image(np.ascontiguousarray(array_zyx.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, str(path))

"""Where a coordinate picked on one scan lies in another: the orientation every scan is turned to, and the mapping.

LUNA16 scans come in two direction matrices (identity and ``diag(-1, -1, 1)``, ~20 % of them); read as arrays, the
second kind shows the anatomy turned by 180 degrees in plane. Under ``discovery.coordinates: relative`` every scan
is first flipped along the array axes whose direction runs against the world axis they mostly follow, so that
array position means the same body side in every scan, and a class's crop centre is kept at the same fraction of
each axis (0 = first voxel centre, 1 = last): the frame in which the autoencoder, fed whole scans resized to one
shape, judged the patients alike. Under ``voxel`` arrays are used as read and the same array index is cut from
every scan (TransVW, whose scans share 512 x 512 slices but not their number). Between scans of one shape and
orientation both rules give the same voxel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dira.data.volumes.geometry import Geometry

MODES = ("relative", "voxel")


def flipped_axes(geometry: Geometry) -> tuple[bool, bool, bool]:
    """(z, y, x): array axes whose index runs against the world axis it mostly follows."""
    matrix = np.asarray(geometry.direction, np.float64)
    flips = []
    for c in range(3):  # index axes i, j, k = array axes x, y, z; column c is axis c's world direction
        column = matrix[:, c]
        flips.append(bool(column[np.argmax(np.abs(column))] < 0))
    return flips[2], flips[1], flips[0]


def scan_flips(geometry: Geometry, mode: str) -> tuple[bool, bool, bool]:
    """The flips a scan gets before discovery: its own under 'relative', none under 'voxel'."""
    if mode not in MODES:
        raise ValueError(f"discovery.coordinates must be one of {MODES}, got {mode!r}")
    return flipped_axes(geometry) if mode == "relative" else (False, False, False)


def orient(volume: np.ndarray, flips: Sequence[bool]) -> np.ndarray:
    """``volume`` (z, y, x) flipped along the axes marked in ``flips`` (a view)."""
    axes = tuple(a for a, flip in enumerate(flips) if flip)
    return np.flip(volume, axis=axes) if axes else volume


def unorient(index: np.ndarray, shape: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    """A (z, y, x) voxel index of the oriented volume as an index of the volume as read."""
    index = np.asarray(index, np.float64).copy()
    for axis, flip in enumerate(flips):
        if flip:
            index[axis] = shape[axis] - 1 - index[axis]
    return index


def relative_position(centre: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``centre`` (z, y, x voxels) as fractions of each axis: 0 = first voxel centre, 1 = last."""
    extent = np.maximum(np.asarray(shape, np.float64) - 1, 1)
    return np.asarray(centre, np.float64) / extent


def map_centre(centre: np.ndarray, reference_shape: Sequence[int], shape: Sequence[int], mode: str) -> np.ndarray:
    """The voxel (z, y, x, continuous) of a scan of ``shape`` that ``centre`` on the reference maps to."""
    if mode == "voxel":
        return np.asarray(centre, np.float64).copy()
    if mode != "relative":
        raise ValueError(f"discovery.coordinates must be one of {MODES}, got {mode!r}")
    return relative_position(centre, reference_shape) * np.maximum(np.asarray(shape, np.float64) - 1, 1)


def crop_start(centre: np.ndarray, extent: Sequence[int]) -> np.ndarray:
    """First voxel of a crop of ``extent`` centred as nearly as the grid allows on ``centre``."""
    return np.rint(np.asarray(centre, np.float64) - (np.asarray(extent) - 1) / 2).astype(np.int64)

"""Linear resampling of a volume to a new voxel spacing, on SimpleITK's grid, about 3× faster than SimpleITK.

The grid is SimpleITK ``Resample``'s with the origin and direction kept and the spacing changed: output
index ``n`` along an axis samples input index ``n · new / old`` (the first voxel centres coincide; the
direction matrix maps both grids to the world alike, so a flipped scan is handled with no special case).
The output has ``floor((size - 1) · old / new) + 1`` voxels per axis, so every sample lies within the input's
first and last voxel centres and nothing is extrapolated. Other resamplers use other grids
(``scipy.ndimage.zoom`` aligns the last centres too, torch's ``interpolate`` the voxel edges), which shifts
every world position by up to a voxel; the returned :class:`Geometry` is the one these samples have.

Trilinear interpolation is separable: each in-plane slice is interpolated along y, then along x, with
gather indices and weights computed once per axis; each output slice is then the blend of the two
resampled input slices around it. Input slices are resampled once each, only if some output needs them,
and runs of output slices are split among threads (numpy releases the GIL in its loops). On 2 cores a
512×512×300 CT goes from 0.7×0.7×1.25 mm to 1 mm in 0.11 s (2 threads) or 0.18 s (1), against 0.35 s for
SimpleITK with 2 threads, within 2e-4 HU of a float64 reference (``benchmarks/resample.py``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from dira.data.volumes.geometry import Geometry

_EPS = 1e-9  # (size - 1) · old / new that is an integer up to rounding keeps its last sample


@dataclass(frozen=True)
class _Axis:
    """Output sample n of one axis: ``(1 - weight[n]) · input[lower[n]] + weight[n] · input[upper[n]]``."""

    lower: np.ndarray  # int64
    upper: np.ndarray  # int64, lower + 1 except at the last input sample
    weight: np.ndarray  # float32 in [0, 1)


def output_size(size: int, old: float, new: float) -> int:
    """Samples along one axis of the resampled grid: those that fall within the input's first and last centres."""
    return math.floor((size - 1) * old / new + _EPS) + 1


def resampled_geometry(geometry: Geometry, spacing: tuple[float, float, float]) -> Geometry:
    """The geometry :func:`resample` returns: origin and direction kept, ``spacing`` (mm, i j k order) set."""
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"target spacing must be 3 positive numbers (mm), got {spacing}")
    size = tuple(output_size(n, old, new) for n, old, new in zip(geometry.size, geometry.spacing, spacing, strict=True))
    return Geometry(geometry.origin, spacing, geometry.direction, size)


def source_coordinates(size_out: int, old: float, new: float) -> np.ndarray:
    """Continuous input index (float64) sampled by each output index of one axis: ``n · new / old``."""
    return np.arange(size_out, dtype=np.float64) * (new / old)


def _axis(size_in: int, size_out: int, old: float, new: float) -> _Axis:
    position = np.minimum(source_coordinates(size_out, old, new), size_in - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), size_in - 1)
    upper = np.minimum(lower + 1, size_in - 1)
    return _Axis(lower, upper, (position - lower).astype(np.float32))


class _SliceResampler:
    """In-plane resampling of input slices (y, then x), keeping the last two so that each is computed once.

    Every step writes into preallocated buffers (``np.take`` with ``mode="clip"`` skips the copy that its
    default mode makes for ``out=``): the slices stay in the CPU cache, and the time goes to arithmetic.
    """

    def __init__(self, volume: np.ndarray, y: _Axis, x: _Axis) -> None:
        self.volume, self.y, self.x = volume, y, x
        ny_in, nx_in = volume.shape[1:]
        self.plane = np.empty((ny_in, nx_in), np.float32)
        self.rows = np.empty((len(y.lower), nx_in), np.float32)
        self.rows_above = np.empty_like(self.rows)
        self.right = np.empty((len(y.lower), len(x.lower)), np.float32)
        self.wy = y.weight[:, None]
        self.wx = x.weight[None, :]
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, k: int) -> np.ndarray:
        """The input slice ``k`` resampled in plane: (ny', nx') float32, valid until two more are asked for."""
        if k not in self.cache:
            spare = self.cache.pop(min(self.cache)) if len(self.cache) >= 2 else np.empty_like(self.right)
            self.cache[k] = self._resample(k, spare)
        return self.cache[k]

    def _resample(self, k: int, out: np.ndarray) -> np.ndarray:
        plane = self.volume[k]
        if plane.dtype != np.float32:
            np.copyto(self.plane, plane)
            plane = self.plane
        rows, above = self.rows, self.rows_above
        np.take(plane, self.y.lower, axis=0, out=rows, mode="clip")
        np.take(plane, self.y.upper, axis=0, out=above, mode="clip")
        above -= rows
        above *= self.wy
        rows += above  # along y
        right = self.right
        np.take(rows, self.x.lower, axis=1, out=out, mode="clip")
        np.take(rows, self.x.upper, axis=1, out=right, mode="clip")
        right -= out
        right *= self.wx
        out += right  # along x
        return out


def resample(volume: np.ndarray, geometry: Geometry, spacing: tuple[float, float, float],
             threads: int = 1) -> tuple[np.ndarray, Geometry]:
    """Resample a (z, y, x) int16 or float32 volume to ``spacing`` (mm, i j k order) by linear interpolation.

    Returns the float32 (z, y, x) samples on SimpleITK's grid (module docstring) and their geometry.
    ``threads`` splits the output slices among that many threads.
    """
    volume = np.asarray(volume)
    if volume.dtype not in (np.int16, np.float32):
        raise ValueError(f"resample takes an int16 or float32 volume, got {volume.dtype}")
    if volume.shape != geometry.array_shape:
        raise ValueError(f"volume shape {volume.shape} (z, y, x) disagrees with geometry size {geometry.size} "
                         "(x, y, z)")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    target = resampled_geometry(geometry, spacing)
    x, y, z = (_axis(n_in, n_out, old, new) for n_in, n_out, old, new in
               zip(geometry.size, target.size, geometry.spacing, target.spacing, strict=True))
    out = np.empty(target.array_shape, np.float32)
    volume = np.ascontiguousarray(volume)

    def fill(ks: range) -> None:
        slices = _SliceResampler(volume, y, x)
        for k in ks:
            lower, weight = slices(int(z.lower[k])), z.weight[k]
            if weight == 0:
                out[k] = lower
            else:
                np.subtract(slices(int(z.upper[k])), lower, out=out[k])
                out[k] *= weight
                out[k] += lower

    chunks = _split(len(z.lower), min(threads, len(z.lower)))
    if len(chunks) == 1:
        fill(chunks[0])
    else:
        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(fill, chunks))
    return out, target


def _split(count: int, parts: int) -> list[range]:
    """``parts`` contiguous ranges covering 0..count-1 (contiguous: neighbouring outputs share input slices)."""
    bounds = np.linspace(0, count, parts + 1).round().astype(int)
    return [range(a, b) for a, b in pairwise(bounds.tolist()) if b > a]


def resample_nearest(labels: np.ndarray, geometry: Geometry, spacing: tuple[float, float, float]) -> np.ndarray:
    """Label maps (z, y, x) on the grid :func:`resample` gives, each output voxel copying the nearest input voxel."""
    target = resampled_geometry(geometry, spacing)
    picks = [np.minimum(np.rint(source_coordinates(output_size(n, old, new), old, new)).astype(np.int64), n - 1)
             for n, old, new in zip(geometry.size, geometry.spacing, target.spacing, strict=True)]
    return labels[np.ix_(picks[2], picks[1], picks[0])]

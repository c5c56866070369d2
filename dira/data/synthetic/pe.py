"""Synthetic CAD-PE in the released layout (``NNN.nrrd`` + ``NNNRefStd.nrrd``), read by the same code as the real set.

Each scan is a small CTPA-like volume at real voxel sizes (in-plane 0.6-0.9 mm, slices 1-2 mm thick,
``image_size`` pixels square, 28-36 slices): air, a soft-tissue body, two lungs (~-850 HU) and contrast-filled
arteries (tubes at 250-400 HU, 1.6-3 mm radius) crossing them. Emboli are filling defects: capsules (a
segment along a vessel's axis, 0.7-0.85 of its radius) at 20-60 HU inside one to three vessels, and the
RefStd mask is exactly the voxels whose centres lie inside a capsule. Everything is drawn in world mm, so
the ~30 % of scans with a flipped direction matrix ``diag(-1, -1, 1)`` hold their anatomy turned. The
same arguments give byte-identical files; ``dira_synthetic.json`` is written last.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dira import __version__
from dira.data.sources.pe import MASK_SUFFIX, SYNTHETIC_MARKER
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.errors import InputError
from dira.io import atomic_path

FLIPPED = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))
IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
FLIPPED_FRACTION = 0.3
SLICES = (28, 36)
HU = {"air": -1000.0, "tissue": 40.0, "lung": -850.0}
NOISE_HU = 15.0
EDGE_MM = 0.5  # partial-volume edge of the drawn shapes

_PLAN, _NOISE = range(2)


@dataclass(frozen=True)
class Tube:
    """A capsule: the points within ``radius`` mm of the segment start-end (world mm)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float
    hu: float

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.start) + np.asarray(self.end)) / 2


@dataclass(frozen=True)
class PlannedScan:
    name: str  # "001"
    geometry: Geometry
    body: tuple[float, float, float, float]  # centre x, y and semi-axes x, y (mm)
    lungs: tuple[tuple[np.ndarray, np.ndarray], ...]  # (centre, semi-axes)
    vessels: tuple[Tube, ...]
    emboli: tuple[Tube, ...]

    @property
    def flipped(self) -> bool:
        return self.geometry.direction != IDENTITY


def plan_geometry(rng: np.random.Generator, image_size: int, flipped: bool) -> Geometry:
    in_plane = round(float(rng.uniform(0.6, 0.9)), 4)
    spacing = (in_plane, in_plane, float(rng.choice((1.0, 1.25, 1.5, 2.0))))
    size = (image_size, image_size, int(rng.integers(SLICES[0], SLICES[1] + 1)))
    direction = FLIPPED if flipped else IDENTITY
    centre = np.array([rng.uniform(-15, 15), rng.uniform(-15, 15), rng.uniform(-200, -100)])
    half = (np.asarray(direction) * (np.asarray(spacing) * (np.asarray(size) - 1) / 2)).sum(1)  # no BLAS
    return Geometry(tuple(round(float(v), 3) for v in centre - half), spacing, direction, size)


def _box(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * (np.asarray(geometry.size) - 1)
    world = index_to_world(geometry, corners)
    return world.min(axis=0), world.max(axis=0)


def segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (mm) of points (..., 3) to the segment start-end."""
    axis = np.asarray(end) - np.asarray(start)
    # element-wise products and sums, not a BLAS dot, whose kernel (and so its last bits) varies by CPU
    t = np.clip(((points - start) * axis).sum(-1) / max(float((axis * axis).sum()), 1e-12), 0, 1)
    return np.linalg.norm(points - (start + t[..., None] * axis), axis=-1)


def plan_scan(name: str, rng: np.random.Generator, image_size: int, flipped: bool, emboli: int,
              geometry: Geometry | None = None) -> PlannedScan:
    """Body, lungs and vessels scaled to the field of view; ``emboli`` filling defects in distinct vessels.
    ``geometry`` replaces the drawn one (tests place anatomy in a chosen grid)."""
    drawn = plan_geometry(rng, image_size, flipped)
    geometry = drawn if geometry is None else geometry
    low, high = _box(geometry)
    middle, fov, depth = (low + high) / 2, float(min(high[:2] - low[:2])), float(high[2] - low[2])
    body = (float(middle[0]), float(middle[1]), 0.47 * fov, 0.4 * fov)
    axes = np.array([0.17 * fov, 0.28 * fov, 0.6 * depth])
    lungs = tuple((middle + np.array([side * 0.21 * fov, 0.0, 0.0]), axes) for side in (-1, 1))
    vessels: list[Tube] = []
    for centre, semi in lungs:
        for _ in range(int(rng.integers(2, 4))):
            along = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 1.0])
            along /= np.linalg.norm(along)
            mid = centre + rng.uniform(-0.45, 0.45, 3) * semi * np.array([1, 1, 0.3])
            half = 0.5 * depth
            vessels.append(Tube(tuple(mid - half * along), tuple(mid + half * along),
                                round(float(rng.uniform(1.6, 3.0)), 3), round(float(rng.uniform(250, 400)), 1)))
    defects: list[Tube] = []
    for v in rng.permutation(len(vessels)):
        if len(defects) == emboli:
            break
        vessel = vessels[int(v)]
        start, end = np.asarray(vessel.start), np.asarray(vessel.end)
        along = (end - start) / np.linalg.norm(end - start)
        length = rng.uniform(1.5, 4.0) * vessel.radius
        # the centre well inside the volume in z, so the whole defect is imaged
        z = rng.uniform(low[2] + 0.3 * depth, high[2] - 0.3 * depth)
        t = (z - start[2]) / along[2]
        mid = start + t * along + rng.uniform(-0.2, 0.2) * vessel.radius * np.cross(along, [1.0, 0.0, 0.0])
        defect = Tube(tuple(mid - length / 2 * along), tuple(mid + length / 2 * along),
                      vessel.radius * float(rng.uniform(0.7, 0.85)), round(float(rng.uniform(20, 60)), 1))
        points = np.linspace(defect.start, defect.end, 11)
        if all(segment_distance(points, np.asarray(d.start), np.asarray(d.end)).min() > d.radius + defect.radius + 3
               for d in defects):  # each embolus its own connected component
            defects.append(defect)
    return PlannedScan(name, geometry, body, lungs, tuple(vessels), tuple(defects))


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    return np.clip(0.5 - signed_distance / EDGE_MM, 0.0, 1.0).astype(np.float32)


def draw(scan: PlannedScan, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """int16 HU (z, y, x) with noise, and the uint8 mask of the voxels whose centres lie in an embolus."""
    geometry = scan.geometry
    k, j, i = np.meshgrid(*(np.arange(n) for n in geometry.array_shape), indexing="ij")
    world = index_to_world(geometry, np.stack([i, j, k], axis=-1))
    volume = np.full(geometry.array_shape, HU["air"], np.float32)
    cx, cy, ax, ay = scan.body
    radius = np.hypot((world[..., 0] - cx) / ax, (world[..., 1] - cy) / ay)
    volume += (HU["tissue"] - volume) * _coverage((radius - 1) * min(ax, ay))
    lungs = np.zeros(volume.shape, np.float32)
    for centre, semi in scan.lungs:
        lungs = np.maximum(lungs, _coverage((np.linalg.norm((world - centre) / semi, axis=-1) - 1) * semi[:2].min()))
    volume += (HU["lung"] - volume) * lungs
    for vessel in scan.vessels:
        distance = segment_distance(world, np.asarray(vessel.start), np.asarray(vessel.end)) - vessel.radius
        volume += (vessel.hu - volume) * _coverage(distance) * lungs
    mask = np.zeros(volume.shape, np.uint8)
    for embolus in scan.emboli:
        distance = segment_distance(world, np.asarray(embolus.start), np.asarray(embolus.end)) - embolus.radius
        volume += (embolus.hu - volume) * _coverage(distance)
        mask[distance <= 0] = 1
    volume += NOISE_HU * rng.standard_normal(volume.shape, dtype=np.float32)
    return np.clip(np.rint(volume), -1024, 3071).astype(np.int16), mask


def write_volume(path: Path, array: np.ndarray, geometry: Geometry) -> None:
    """Write a (z, y, x) array with its geometry through SimpleITK (the format from the suffix), atomically."""
    import SimpleITK as sitk

    if array.shape != geometry.array_shape:
        raise ValueError(f"expected shape {geometry.array_shape}, got {array.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.flat_direction)
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        sitk.WriteImage(image, str(tmp), True)


def _clear(root: Path) -> None:
    """Drop an earlier synthetic set; refuse to touch what looks like a real copy."""
    ours = sorted(root.glob("*.nrrd")) if root.is_dir() else []
    if holds_synthetic(root):
        for path in ours:
            path.unlink()
    elif ours:
        raise InputError(f"{root}: holds .nrrd files without {SYNTHETIC_MARKER}; refusing to overwrite what looks "
                         "like a real CAD-PE copy")


def plan_scans(count: int, image_size: int, seed: int) -> list[PlannedScan]:
    """``count`` scans named 001, 002, ...; the first unflipped and the second flipped."""
    rng = np.random.default_rng([seed, _PLAN])
    flipped = rng.uniform(size=count) < FLIPPED_FRACTION
    if count >= 2:
        flipped[0], flipped[1] = False, True
    emboli = rng.integers(1, 4, count)
    return [plan_scan(f"{n + 1:03d}", np.random.default_rng([seed, _PLAN, n]), image_size, bool(flipped[n]),
                      int(emboli[n])) for n in range(count)]


def write_pe(out: Path, count: int, image_size: int, seed: int) -> Path:
    """Write ``count`` CAD-PE-style scans of ``image_size``² pixels under ``out``; return it."""
    root = Path(out)
    if count < 1 or not 32 <= image_size <= 512:
        raise InputError(f"synthetic CAD-PE needs count >= 1 and 32 <= image_size <= 512, got {count} and {image_size}")
    _clear(root)
    begin_writing(root)
    root.mkdir(parents=True, exist_ok=True)
    plans = plan_scans(count, image_size, seed)
    for n, scan in enumerate(tqdm(plans, desc="synth pe", unit="scan")):
        volume, mask = draw(scan, np.random.default_rng([seed, _NOISE, n]))
        write_volume(root / f"{scan.name}.nrrd", volume, scan.geometry)
        write_volume(root / f"{scan.name}{MASK_SUFFIX}.nrrd", mask, scan.geometry)
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "scans": count, "image_size": image_size, "seed": seed,
        "flipped": sum(s.flipped for s in plans), "emboli": sum(len(s.emboli) for s in plans),
    })
    return root


def write(out: Path, count: int, image_size: int, seed: int) -> None:
    """The interface every synthetic writer shares (``dira synth pe``); count = scans."""
    write_pe(out, count=count, image_size=image_size, seed=seed)

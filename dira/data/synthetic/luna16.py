"""Synthetic LUNA16 in the released layout, read by the same code as the real set.

``write(out, ...)`` creates ``out/subset0``–``subset9`` of ``<seriesuid>.mhd`` + ``.raw`` (int16 HU, x
fastest, little-endian, LUNA's header keys), ``annotations.csv`` and ``candidates_V2/candidates_V2.csv``.
Each scan is a miniature thorax at real voxel sizes (in-plane 0.55–0.95 mm, slices 1–2.5 mm thick,
``image_size`` pixels square, so the field of view is small and the anatomy is scaled to it): air, a body
ellipse of soft tissue under a fat layer, a spine, two air-filled lungs (~-850 HU) with vessels, and
spherical solid nodules at exactly the annotated world positions. Everything is drawn in world
coordinates, so the ~20 % of scans with LUNA's flipped direction matrix ``diag(-1, -1, 1)`` show the
anatomy turned in their arrays as real ones do, and a reader that ignores the matrix misses every nodule.
Candidates are the nodules (class 1) and many class-0 points on vessels, in the lungs and in the body.
The same arguments give byte-identical files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dira import __version__
from dira.data.sources.luna16 import (
    ANNOTATION_COLUMNS,
    ANNOTATIONS,
    CANDIDATE_COLUMNS,
    CANDIDATES,
    SERIES_PREFIX,
    SUBSETS,
    SYNTHETIC_MARKER,
    subset_folder,
)
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.volumes.geometry import Geometry, index_to_world, world_to_index
from dira.errors import InputError
from dira.io import atomic_path, write_text

FLIPPED = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))  # LUNA's other TransformMatrix
IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
FLIPPED_FRACTION = 0.2
SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5)  # mm, common in LUNA16
NODULE_COUNTS = (0, 1, 1, 2, 3)  # drawn per scan; the release averages 1.3 nodules a scan
NEGATIVES = (40, 80)  # class-0 candidates per scan (the release has ~850)
HU = {"air": -1000.0, "padding": -2048.0, "fat": -100.0, "tissue": 40.0, "lung": -850.0, "vessel": 40.0,
      "bone": 450.0}
NOISE_HU = 15.0
EDGE_MM = 0.6  # width of the partial-volume edge of every drawn shape

_PLAN, _ANATOMY, _NOISE = range(3)  # independent random streams


@dataclass(frozen=True)
class Nodule:
    centre: tuple[float, float, float]  # world mm, as written to the CSVs
    diameter: float  # mm
    hu: float


@dataclass(frozen=True)
class Vessel:
    start: tuple[float, float, float]  # world mm
    end: tuple[float, float, float]
    radius: float  # mm


@dataclass(frozen=True)
class Anatomy:
    """A thorax in world mm: body ellipse and spine along z, two ellipsoidal lungs, vessels and nodules."""

    centre: tuple[float, float]  # body centre (x, y)
    body_axes: tuple[float, float]  # semi-axes (x, y)
    lungs: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...]  # (centre, semi-axes)
    spine: tuple[float, float, float]  # (x, y, radius)
    vessels: tuple[Vessel, ...]
    nodules: tuple[Nodule, ...]
    padding_radius: float | None  # outside this in-plane radius (from the scan's centre) voxels are padding


@dataclass(frozen=True)
class PlannedScan:
    seriesuid: str
    subset: int
    geometry: Geometry
    anatomy: Anatomy
    negatives: np.ndarray  # (M, 3) world mm of class-0 candidates

    @property
    def flipped(self) -> bool:
        return self.geometry.direction != IDENTITY


def _mm(value: float) -> float:
    """A coordinate as the CSVs print it (4 decimals), so that what is drawn is exactly what is written."""
    return float(f"{value:.4f}")


def _point(values: np.ndarray) -> tuple[float, float, float]:
    return _mm(values[0]), _mm(values[1]), _mm(values[2])


def plan_geometry(rng: np.random.Generator, image_size: int, flipped: bool) -> Geometry:
    """LUNA-like geometry: square slices, anisotropic voxels, an origin that puts the body near world x = y = 0."""
    slices = int(rng.integers(round(0.625 * image_size), round(1.25 * image_size) + 1))
    in_plane = round(float(rng.uniform(0.55, 0.95)), 6)
    spacing = (in_plane, in_plane, float(rng.choice(SLICE_THICKNESSES)))
    size = (image_size, image_size, slices)
    direction = FLIPPED if flipped else IDENTITY
    centre = np.array([rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(-250, -100)])
    half = (np.asarray(direction) * (np.asarray(spacing) * (np.asarray(size) - 1) / 2)).sum(1)  # no BLAS
    origin = tuple(round(float(v), 3) for v in centre - half)
    return Geometry(origin, spacing, direction, size)


def world_box(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) world corners (mm) of the box spanned by the voxel centres."""
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * (np.asarray(geometry.size) - 1)
    world = index_to_world(geometry, corners)
    return world.min(axis=0), world.max(axis=0)


def plan_anatomy(rng: np.random.Generator, geometry: Geometry, want_nodules: int) -> Anatomy:
    low, high = world_box(geometry)
    middle = (low + high) / 2
    fov = float(min(high[:2] - low[:2]))
    extent = float(high[2] - low[2])
    cx, cy = middle[:2] + rng.uniform(-0.03, 0.03, 2) * fov
    body = (0.44 * fov * rng.uniform(0.95, 1.0), 0.34 * fov * rng.uniform(0.92, 1.0))
    lung_axes = (0.15 * fov * rng.uniform(0.9, 1.05), 0.22 * fov * rng.uniform(0.9, 1.05), 0.47 * extent)
    lung_z = middle[2] + rng.uniform(-0.03, 0.03) * extent
    lungs = tuple(((cx + side * 0.2 * fov, cy - 0.02 * fov, lung_z), lung_axes) for side in (-1, 1))
    spine = (cx, cy + 0.25 * fov, 0.065 * fov)
    nodules = _plan_nodules(rng, geometry, lungs, want_nodules)
    vessels = _plan_vessels(rng, lungs, nodules)
    padding = 0.5 * fov if rng.uniform() < 0.5 else None  # many LUNA scans pad outside the reconstruction circle
    return Anatomy((float(cx), float(cy)), body, lungs, spine, vessels, nodules, padding)


def _in_lung(rng: np.random.Generator, lung: tuple, margin: float) -> np.ndarray | None:
    """A random point of the lung at least ``margin`` mm inside its surface (approximately), or None."""
    centre, axes = np.asarray(lung[0]), np.asarray(lung[1])
    for _ in range(50):
        u = rng.uniform(-1, 1, 3)
        if np.linalg.norm(u) <= 1 and (1 - np.linalg.norm(u)) * axes.min() >= margin:
            return centre + u * axes
    return None


def _plan_nodules(rng: np.random.Generator, geometry: Geometry, lungs: tuple, count: int) -> tuple[Nodule, ...]:
    thickness = geometry.spacing[2]
    cap = 0.8 * min(lungs[0][1][:2])
    nodules: list[Nodule] = []
    for _ in range(20 * count):
        if len(nodules) == count:
            break
        low = min(max(3.5, 1.5 * thickness), 0.75 * cap)  # LUNA16 annotates nodules >= 3 mm
        diameter = _mm(rng.uniform(low, max(cap, low)))
        centre = _in_lung(rng, lungs[int(rng.integers(2))], diameter / 2 + 1.5)
        if centre is None or any(np.linalg.norm(centre - n.centre) < (diameter + n.diameter) / 2 + 3 for n in nodules):
            continue
        nodules.append(Nodule(_point(centre), diameter, float(rng.uniform(-60, 60))))
    return tuple(nodules)


def _segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (mm) of points (..., 3) to the segment start–end."""
    axis = end - start
    # element-wise products and sums, not a BLAS dot, whose kernel (and so its last bits) varies by CPU
    t = np.clip(((points - start) * axis).sum(-1) / max(float((axis * axis).sum()), 1e-12), 0, 1)
    return np.linalg.norm(points - (start + t[..., None] * axis), axis=-1)


def _plan_vessels(rng: np.random.Generator, lungs: tuple, nodules: tuple[Nodule, ...]) -> tuple[Vessel, ...]:
    """Vessels from each lung's hilum outwards, kept clear of the nodules (a nodule stays one blob)."""
    vessels = []
    for side, lung in zip((-1, 1), lungs, strict=True):
        centre, axes = np.asarray(lung[0]), np.asarray(lung[1])
        for _ in range(int(rng.integers(5, 9))):
            hilum = centre + np.array([-side * 0.7 * axes[0], rng.uniform(-0.2, 0.2) * axes[1],
                                       rng.uniform(-0.3, 0.3) * axes[2]])
            end = _in_lung(rng, lung, 1.0)
            radius = _mm(rng.uniform(0.5, 1.2))
            if end is None or any(_segment_distance(np.asarray(n.centre), hilum, end) < n.diameter / 2 + radius + 2.5
                                  for n in nodules):
                continue
            vessels.append(Vessel(_point(hilum), _point(end), radius))
    return tuple(vessels)


def _plan_negatives(rng: np.random.Generator, geometry: Geometry, anatomy: Anatomy, count: int) -> np.ndarray:
    """Class-0 candidates: on vessels (hard negatives), anywhere in the lungs, in the body; none near a nodule."""
    points = []
    low, high = world_box(geometry)
    for _ in range(20 * count):
        if len(points) == count:
            break
        kind = rng.uniform()
        if kind < 0.4 and anatomy.vessels:
            vessel = anatomy.vessels[int(rng.integers(len(anatomy.vessels)))]
            point = np.asarray(vessel.start) + rng.uniform() * (np.asarray(vessel.end) - vessel.start)
        elif kind < 0.8:
            point = _in_lung(rng, anatomy.lungs[int(rng.integers(2))], 0.5)
        else:
            angle, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.8))
            point = np.array([anatomy.centre[0] + r * np.cos(angle) * anatomy.body_axes[0],
                              anatomy.centre[1] + r * np.sin(angle) * anatomy.body_axes[1],
                              rng.uniform(low[2], high[2])])
        if point is None or not ((point >= low).all() and (point <= high).all()):
            continue
        if any(np.linalg.norm(point - n.centre) < n.diameter / 2 + 3 for n in anatomy.nodules):
            continue
        points.append(_point(point))
    return np.array(points, dtype=np.float64).reshape(-1, 3)


def plan_scans(count: int, image_size: int, seed: int) -> list[PlannedScan]:
    """Unique seriesuids over the ten subsets; at least one flipped and one unflipped scan with nodules."""
    rng = np.random.default_rng([seed, _PLAN])
    uids: list[str] = []
    while len(uids) < count:
        uid = SERIES_PREFIX + str(int(rng.integers(1, 10))) + "".join(map(str, rng.integers(0, 10, 29)))
        if uid not in uids:
            uids.append(uid)
    flipped = rng.uniform(size=count) < FLIPPED_FRACTION
    if count >= 2:
        flipped[0], flipped[1] = False, True
    nodule_counts = rng.choice(NODULE_COUNTS, count)
    nodule_counts[:2] = np.maximum(nodule_counts[:2], 1)
    negatives = rng.integers(NEGATIVES[0], NEGATIVES[1] + 1, count)
    plans = []
    for i, uid in enumerate(uids):
        scan_rng = np.random.default_rng([seed, _ANATOMY, i])
        geometry = plan_geometry(scan_rng, image_size, bool(flipped[i]))
        anatomy = plan_anatomy(scan_rng, geometry, int(nodule_counts[i]))
        plans.append(PlannedScan(uid, SUBSETS[i % len(SUBSETS)], geometry, anatomy,
                                 _plan_negatives(scan_rng, geometry, anatomy, int(negatives[i]))))
    return plans


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Fraction of a voxel inside a shape, from the signed distance (mm, negative inside) of its centre."""
    return np.clip(0.5 - signed_distance / EDGE_MM, 0.0, 1.0)


def _paint(volume: np.ndarray, box: tuple[slice, ...], coverage: np.ndarray, hu: float) -> None:
    region = volume[box]
    region += (np.float32(hu) - region) * coverage.astype(np.float32)


def _index_box(geometry: Geometry, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Array slices (z, y, x) of the voxels whose centres may lie in the world box [low, high], or None."""
    corners = np.array([[a[0], b[1], c[2]] for a in (low, high) for b in (low, high) for c in (low, high)])
    index = world_to_index(geometry, corners)
    start = np.maximum(np.floor(index.min(axis=0)).astype(int) - 1, 0)
    stop = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 2, geometry.size)
    if (stop <= start).any():
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(start[::-1], stop[::-1], strict=True))


def _world(geometry: Geometry, box: tuple[slice, slice, slice]) -> np.ndarray:
    """World mm (nz, ny, nx, 3) of the voxel centres in an array box."""
    k, j, i = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
    return index_to_world(geometry, np.stack([i, j, k], axis=-1))


def _overlap(a: tuple[slice, ...], b: tuple[slice, ...] | None) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """(box, the same box relative to ``a``) of the intersection of array boxes ``a`` and ``b``, or None."""
    if b is None:
        return None
    both = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b, strict=True))
    if any(s.stop <= s.start for s in both):
        return None
    return both, tuple(slice(s.start - x.start, s.stop - x.start) for s, x in zip(both, a, strict=True))


def _draw_slab(geometry: Geometry, anatomy: Anatomy, slab: tuple[slice, slice, slice],
               parts: list[tuple[tuple[slice, ...] | None, Vessel | Nodule]]) -> np.ndarray:
    """HU of the voxels in ``slab`` (a run of whole slices), without noise."""
    world = _world(geometry, slab)
    volume = np.full(world.shape[:3], HU["air"], np.float32)
    everything = tuple(slice(0, n) for n in volume.shape)
    cx, cy = anatomy.centre
    ax, ay = anatomy.body_axes
    radius = np.hypot((world[..., 0] - cx) / ax, (world[..., 1] - cy) / ay)  # 1 on the skin
    _paint(volume, everything, _coverage((radius - 1) * min(ax, ay)), HU["fat"])
    _paint(volume, everything, _coverage((radius - 0.9) * min(ax, ay)), HU["tissue"])
    sx, sy, sr = anatomy.spine
    _paint(volume, everything, _coverage(np.hypot(world[..., 0] - sx, world[..., 1] - sy) - sr), HU["bone"])
    lungs = np.zeros(volume.shape, np.float32)
    for centre, axes in anatomy.lungs:
        lungs = np.maximum(lungs, _coverage((np.linalg.norm((world - centre) / axes, axis=-1) - 1) * min(axes)))
    _paint(volume, everything, lungs, HU["lung"])
    for box, shape in parts:  # vessels (inside the lungs only), then nodules
        overlap = _overlap(slab, box)
        if overlap is None:
            continue
        local = overlap[1]
        if isinstance(shape, Vessel):
            distance = _segment_distance(world[local], np.asarray(shape.start), np.asarray(shape.end)) - shape.radius
            _paint(volume, local, _coverage(distance) * lungs[local], HU["vessel"])
        else:
            distance = np.linalg.norm(world[local] - np.asarray(shape.centre), axis=-1) - shape.diameter / 2
            _paint(volume, local, _coverage(distance), shape.hu)
    if anatomy.padding_radius is not None:
        low, high = world_box(geometry)
        middle = (low + high) / 2
        volume[np.hypot(world[..., 0] - middle[0], world[..., 1] - middle[1]) > anatomy.padding_radius] = np.nan
    return volume


def draw(geometry: Geometry, anatomy: Anatomy, rng: np.random.Generator, slab: int = 16) -> np.ndarray:
    """The scan's int16 HU volume (z, y, x): the anatomy sampled at the voxel centres, plus noise.

    Drawn ``slab`` slices at a time, so memory stays a few times the volume's size.
    """
    parts: list[tuple[tuple[slice, ...] | None, Vessel | Nodule]] = []  # each with the array box it may touch
    for vessel in anatomy.vessels:
        start, end = np.asarray(vessel.start), np.asarray(vessel.end)
        margin = vessel.radius + 2 * EDGE_MM
        parts.append((_index_box(geometry, np.minimum(start, end) - margin, np.maximum(start, end) + margin), vessel))
    for nodule in anatomy.nodules:
        centre, r = np.asarray(nodule.centre), nodule.diameter / 2
        parts.append((_index_box(geometry, centre - r - 2 * EDGE_MM, centre + r + 2 * EDGE_MM), nodule))
    nz, ny, nx = geometry.array_shape
    out = np.empty(geometry.array_shape, np.int16)
    for k in range(0, nz, slab):
        box = (slice(k, min(nz, k + slab)), slice(0, ny), slice(0, nx))
        volume = _draw_slab(geometry, anatomy, box, parts)
        volume += NOISE_HU * rng.standard_normal(volume.shape, dtype=np.float32)
        np.nan_to_num(volume, copy=False, nan=HU["padding"])  # padding carries no noise
        out[box] = np.clip(np.rint(volume), -3024, 3071)
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def mhd_text(geometry: Geometry, data_file: str) -> str:
    """A LUNA16-style header; ``TransformMatrix`` lists the direction column by column, as ITK reads it."""
    columns = [geometry.direction[r][c] for c in range(3) for r in range(3)]
    fields = [
        ("ObjectType", "Image"), ("NDims", "3"), ("BinaryData", "True"), ("BinaryDataByteOrderMSB", "False"),
        ("CompressedData", "False"), ("TransformMatrix", " ".join(_number(v) for v in columns)),
        ("Offset", " ".join(_number(v) for v in geometry.origin)), ("CenterOfRotation", "0 0 0"),
        ("AnatomicalOrientation", "RAI"), ("ElementSpacing", " ".join(_number(v) for v in geometry.spacing)),
        ("DimSize", " ".join(str(n) for n in geometry.size)), ("ElementType", "MET_SHORT"),
        ("ElementDataFile", data_file),
    ]
    return "".join(f"{key} = {value}\n" for key, value in fields)


def write_scan(header: Path, volume: np.ndarray, geometry: Geometry) -> None:
    """Write an int16 (z, y, x) volume as ``header`` (.mhd) + the .raw beside it (little-endian, x fastest)."""
    if volume.dtype != np.int16 or volume.shape != geometry.array_shape:
        raise ValueError(f"expected int16 {geometry.array_shape}, got {volume.dtype} {volume.shape}")
    raw = header.with_suffix(".raw")
    with atomic_path(raw) as tmp:
        tmp.write_bytes(np.ascontiguousarray(volume, dtype="<i2").tobytes())
    write_text(header, mhd_text(geometry, raw.name))


def _csv(columns: tuple[str, ...], rows: list[str]) -> str:
    return ",".join(columns) + "\n" + "".join(row + "\n" for row in rows)


def _clear(root: Path) -> None:
    """Drop an earlier synthetic set; refuse to touch what looks like a real copy."""
    ours = [root / subset_folder(k) for k in SUBSETS] + [root / ANNOTATIONS, root / Path(CANDIDATES).parent]
    if holds_synthetic(root):
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    elif any(path.exists() for path in ours):
        raise InputError(f"{root}: holds LUNA16 files without {SYNTHETIC_MARKER}; refusing to overwrite what "
                         "looks like a real LUNA16 copy")


def write_luna16(out: Path, count: int, image_size: int, seed: int) -> Path:
    """Write ``count`` scans of ``image_size``² pixels under ``out`` (the LUNA16 root); return it."""
    root = Path(out)
    if count < 1 or not 32 <= image_size <= 512:
        raise InputError(f"synthetic LUNA16 needs count >= 1 and 32 <= image_size <= 512, got {count} and {image_size}")
    _clear(root)
    begin_writing(root)
    for subset in SUBSETS:
        (root / subset_folder(subset)).mkdir(parents=True, exist_ok=True)
    plans = plan_scans(count, image_size, seed)
    annotations, candidates = [], []
    for i, scan in enumerate(tqdm(plans, desc="synth luna16", unit="scan")):
        volume = draw(scan.geometry, scan.anatomy, np.random.default_rng([seed, _NOISE, i]))
        write_scan(root / subset_folder(scan.subset) / f"{scan.seriesuid}.mhd", volume, scan.geometry)
    for scan in sorted(plans, key=lambda s: s.seriesuid):  # the release's CSVs are grouped by scan
        nodules = [(n.centre, n.diameter) for n in scan.anatomy.nodules]
        annotations += [f"{scan.seriesuid},{x:.4f},{y:.4f},{z:.4f},{d:.4f}" for (x, y, z), d in nodules]
        rows = [(tuple(p), 0) for p in scan.negatives] + [(c, 1) for c, _ in nodules]
        order = np.random.default_rng([seed, _PLAN, int(scan.seriesuid[-12:])]).permutation(len(rows))
        candidates += [f"{scan.seriesuid},{rows[r][0][0]:.4f},{rows[r][0][1]:.4f},{rows[r][0][2]:.4f},{rows[r][1]}"
                       for r in order]
    write_text(root / ANNOTATIONS, _csv(ANNOTATION_COLUMNS, annotations))
    write_text(root / CANDIDATES, _csv(CANDIDATE_COLUMNS, candidates))
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "scans": count, "image_size": image_size, "seed": seed,
        "flipped": sum(s.flipped for s in plans), "nodules": len(annotations), "candidates": len(candidates),
    })
    return root


def write(out: Path, count: int, image_size: int, seed: int) -> None:
    """The interface every synthetic writer shares (``dira synth luna16``); count = scans."""
    write_luna16(out, count=count, image_size=image_size, seed=seed)

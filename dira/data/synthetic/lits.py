"""Synthetic LiTS 2017 in the released layout (``volume-N.nii`` + ``segmentation-N.nii``), read by the real reader.

Each case is a miniature abdomen at CT-like voxel sizes (``image_size`` pixels square, 0.6-0.9 mm in plane,
0.8-2.5 mm slices): air, a body ellipse of soft tissue under fat, a spine, a contrast-enhanced liver
ellipsoid on the patient's right (label 1) and, in most cases, a hypodense spherical tumour inside it
(label 2). Shapes are drawn in world coordinates and the label map is the same inside-test as the image,
so image and mask agree voxel for voxel. Orientations vary as in the release: LPS+ (NIfTI affine
``diag(-sx, -sy, sz)``), flipped in x and y, or flipped in z; some volumes are stored as float32 and some
segmentations as float32, the rest int16 / uint8. Case numbers are spread over Models Genesis' split
(train 0.., val 100.., test 115..), so the default split gives every split cases. The same arguments give
byte-identical files; ``dira_synthetic.json`` is written last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from dira import __version__
from dira.data.sources.lits import SYNTHETIC_MARKER, VOLUME, segmentation_name, volume_name
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.data.volumes.nifti import write_nifti
from dira.errors import InputError

ORIENTATIONS = (
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),  # LPS+
    ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),  # flipped in x and y (RAS+ on disk)
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # slices stored feet first
)
SLICE_THICKNESSES = (0.8, 1.0, 1.5, 2.0, 2.5)
HU = {"air": -1000.0, "fat": -100.0, "tissue": 40.0, "bone": 400.0, "liver": 110.0, "tumour": 35.0}
NOISE_HU = 10.0
SPLIT_STARTS = {"train": 0, "val": 100, "test": 115}
SPLIT_SIZES = {"train": 100, "val": 15, "test": 15}
_PLAN, _CASE, _NOISE = range(3)


def case_numbers(count: int) -> list[int]:
    """``count`` volume numbers, about 100 : 15 : 15 over Models Genesis' train / val / test ranges."""
    if not 3 <= count <= sum(SPLIT_SIZES.values()):
        raise InputError(f"synthetic LiTS needs 3 <= count <= 130, got {count}")
    held = min(15, max(1, round(count * 15 / 130)))
    sizes = {"train": count - 2 * held, "val": held, "test": held}
    if sizes["train"] > SPLIT_SIZES["train"]:
        extra = sizes["train"] - SPLIT_SIZES["train"]
        sizes = {"train": SPLIT_SIZES["train"], "val": held + (extra + 1) // 2, "test": held + extra // 2}
    return [SPLIT_STARTS[split] + k for split in SPLIT_STARTS for k in range(sizes[split])]


def plan_geometry(rng: np.random.Generator, image_size: int, orientation: int) -> Geometry:
    """An abdominal CT's grid: square slices, anisotropic voxels, centred near world x = y = 0."""
    slices = int(rng.integers(round(0.5 * image_size), round(0.9 * image_size) + 1))
    in_plane = round(float(rng.uniform(0.6, 0.9)), 4)
    spacing = (in_plane, in_plane, float(rng.choice(SLICE_THICKNESSES)))
    size = (image_size, image_size, slices)
    direction = ORIENTATIONS[orientation]
    centre = np.array([rng.uniform(-15, 15), rng.uniform(-15, 15), rng.uniform(-600, -400)])
    half = (np.asarray(direction) * (np.asarray(spacing) * (np.asarray(size) - 1) / 2)).sum(1)  # no BLAS
    return Geometry(tuple(round(float(v), 3) for v in centre - half), spacing, direction, size)


def _world(geometry: Geometry) -> np.ndarray:
    k, j, i = np.meshgrid(*(np.arange(n) for n in geometry.array_shape), indexing="ij")
    return index_to_world(geometry, np.stack([i, j, k], axis=-1))


def _box(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * (np.asarray(geometry.size) - 1)
    world = index_to_world(geometry, corners)
    return world.min(axis=0), world.max(axis=0)


def draw_case(geometry: Geometry, rng: np.random.Generator, tumour: bool) -> tuple[np.ndarray, np.ndarray]:
    """HU (float32, no noise) and labels (uint8) of one abdomen on ``geometry``, both (z, y, x)."""
    world = _world(geometry)
    low, high = _box(geometry)
    middle, fov, extent = (low + high) / 2, float(min(high[:2] - low[:2])), float(high[2] - low[2])
    cx, cy = middle[:2] + rng.uniform(-0.03, 0.03, 2) * fov
    ax, ay = 0.45 * fov * rng.uniform(0.93, 1.0), 0.36 * fov * rng.uniform(0.9, 1.0)
    radius = np.hypot((world[..., 0] - cx) / ax, (world[..., 1] - cy) / ay)
    hu = np.full(world.shape[:3], HU["air"], np.float32)
    hu[radius <= 1] = HU["fat"]
    hu[radius <= 0.9] = HU["tissue"]
    hu[np.hypot(world[..., 0] - cx, world[..., 1] - (cy + 0.24 * fov)) <= 0.06 * fov] = HU["bone"]
    labels = np.zeros(hu.shape, np.uint8)
    # the liver: on the patient's right (-x in LPS), anterior (-y), filling most of the slab in z
    centre = np.array([cx - 0.17 * fov, cy - 0.04 * fov, middle[2] + rng.uniform(-0.08, 0.08) * extent])
    axes = np.array([0.2 * fov, 0.17 * fov, 0.38 * extent]) * rng.uniform(0.9, 1.1, 3)
    liver = np.linalg.norm((world - centre) / axes, axis=-1) <= 1
    hu[liver], labels[liver] = HU["liver"], 1
    if tumour:
        r = float(min(axes[:2]) * rng.uniform(0.25, 0.4))
        spot = centre + rng.uniform(-0.3, 0.3, 3) * (axes - r)
        inside = (np.linalg.norm(world - spot, axis=-1) <= r) & liver
        hu[inside], labels[inside] = HU["tumour"], 2
    return hu, labels


def _clear(root: Path) -> None:
    """Drop an earlier synthetic set; refuse to touch what looks like a real copy."""
    ours = [p for p in root.iterdir() if VOLUME.match(p.name) or p.name.startswith("segmentation-")] \
        if root.is_dir() else []
    if holds_synthetic(root):
        for path in ours:
            path.unlink()
    elif ours:
        raise InputError(f"{root}: holds LiTS volumes without {SYNTHETIC_MARKER}; refusing to overwrite what "
                         "looks like a real LiTS copy")


def write_lits(out: Path, count: int, image_size: int, seed: int) -> Path:
    """Write ``count`` cases of ``image_size``² pixels under ``out`` (the LiTS root); return it."""
    root = Path(out)
    if not 32 <= image_size <= 512:
        raise InputError(f"synthetic LiTS needs 32 <= image_size <= 512, got {image_size}")
    numbers = case_numbers(count)
    _clear(root)
    begin_writing(root)
    root.mkdir(parents=True, exist_ok=True)
    plan = np.random.default_rng([seed, _PLAN])
    orientations = plan.integers(0, len(ORIENTATIONS), count)
    orientations[: min(count, len(ORIENTATIONS))] = np.arange(min(count, len(ORIENTATIONS)))  # every kind present
    tumours = plan.uniform(size=count) < 0.8
    tumours[0] = True
    float_volumes, float_segmentations = plan.uniform(size=count) < 0.25, plan.uniform(size=count) < 0.25
    float_volumes[1], float_segmentations[2] = True, True  # both storage kinds present in any set
    for i, number in enumerate(tqdm(numbers, desc="synth lits", unit="case")):
        rng = np.random.default_rng([seed, _CASE, number])
        geometry = plan_geometry(rng, image_size, int(orientations[i]))
        hu, labels = draw_case(geometry, rng, bool(tumours[i]))
        hu += NOISE_HU * np.random.default_rng([seed, _NOISE, number]).standard_normal(hu.shape, dtype=np.float32)
        volume = np.rint(hu).astype(np.float32 if float_volumes[i] else np.int16)
        write_nifti(root / volume_name(number), volume, geometry)
        write_nifti(root / segmentation_name(number), labels.astype(np.float32 if float_segmentations[i] else np.uint8),
                    geometry)
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "cases": count, "image_size": image_size, "seed": seed,
        "case_numbers": numbers, "orientations": [int(o) for o in orientations], "tumours": int(tumours.sum())})
    return root


def write(out: Path, count: int, image_size: int, seed: int) -> None:
    """The interface every synthetic writer shares (``dira synth lits``); count = cases (CT volumes)."""
    write_lits(out, count=count, image_size=image_size, seed=seed)

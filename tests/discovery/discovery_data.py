"""Planted visual-word data (helpers; fixtures in conftest.py): LUNA16-format scans in K groups of their own anatomy.

Each group has its own structure (a bright sphere in air, stripes of fat and water, air pockets in bone-dense
tissue: three intensity levels), so a working discovery must find every class's neighbours inside its reference's
group. Scans differ in slice count (the coordinate mapping across shapes is exercised) and carry small shifts and
noise (no two are identical).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dira.config import deep_merge, validate
from dira.data.sources.luna16 import ANNOTATION_COLUMNS, ANNOTATIONS, CANDIDATE_COLUMNS, CANDIDATES
from dira.data.synthetic.luna16 import FLIPPED, IDENTITY, write_scan
from dira.data.volumes.geometry import Geometry
from dira.io import write_json, write_text

GROUPS = 3
TRAIN_PER_GROUP, VAL_PER_GROUP = 4, 2
IN_PLANE = 40

# Small everything: 8x16x16 crops, a 4-wide U-Net on 16x32x32 volumes (2 wide, 3 epochs separate the groups only
# for some seeds), every group member a neighbour.
SETTINGS = {
    "device": "cpu", "threads": 1,
    "model3d": {"base_width": 4},
    "datasets": {"luna16": {"crop_shape": [8, 16, 16],
                            "cubes": {"border": [1, 2, 2], "tissue_lookahead": 1, "max_tissue_fraction": 1.0}}},
    "discovery": {"autoencoder": {"volume_shape": [16, 32, 32], "epochs": 3, "batch_size": 4},
                  "classes": GROUPS, "neighbours_train": TRAIN_PER_GROUP, "neighbours_val": VAL_PER_GROUP,
                  "min_distance": 2, "tries": 50, "multi_resolution": True},
}


def settings(**discovery) -> dict:
    """The schema's defaults under SETTINGS and ``discovery`` overrides."""
    return validate(deep_merge(SETTINGS, {"discovery": discovery}))


def group_volume(group: int, depth: int, rng: np.random.Generator) -> np.ndarray:
    """int16 HU (depth, 40, 40) of ``group``'s anatomy, shifted by up to 2 voxels in plane, with noise."""
    z, y, x = np.meshgrid(np.linspace(-1, 1, depth), np.linspace(-1, 1, IN_PLANE), np.linspace(-1, 1, IN_PLANE),
                          indexing="ij")
    if group == 0:
        volume = np.where(x**2 + y**2 + z**2 < 0.4, 400.0, -950.0)
    elif group == 1:
        volume = np.where(np.sin(6 * x) > 0, 0.0, -400.0)
    else:
        volume = np.where((np.abs(x) > 0.7) & (np.abs(y) > 0.7), -900.0, 700.0)
    volume = np.roll(volume, tuple(rng.integers(-2, 3, size=2)), axis=(1, 2))
    return np.rint(volume + rng.normal(0, 10, volume.shape)).astype(np.int16)


def geometry(shape: tuple[int, int, int], flipped: bool = False) -> Geometry:
    return Geometry((0.0, 0.0, 0.0), (0.8, 0.8, 2.0), FLIPPED if flipped else IDENTITY, shape[::-1])


def write_root(root: Path, volumes: dict[str, tuple[int, np.ndarray, bool]]) -> Path:
    """A LUNA16 root of ``uid -> (subset, volume, flipped)`` with header-only CSVs."""
    for k in range(10):
        (root / f"subset{k}").mkdir(parents=True, exist_ok=True)
    for uid, (subset, volume, flipped) in volumes.items():
        write_scan(root / f"subset{subset}" / f"{uid}.mhd", volume, geometry(volume.shape, flipped))
    write_text(root / ANNOTATIONS, ",".join(ANNOTATION_COLUMNS) + "\n")
    write_text(root / CANDIDATES, ",".join(CANDIDATE_COLUMNS) + "\n")
    return root


def write_splits(path: Path, train: list[str], val: list[str]) -> Path:
    write_json(path, {"dataset": "luna16", "pretrain_train": train, "pretrain_val": val})
    return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())

"""Tiny 3D caches in the preparers' layouts, written with dira.data.cache's writers, and a fast config.

Crops are 8 x 16 x 16 (z, y, x): the smallest the 3D U-Net's three poolings take. Candidate crops show a
bright ball at the centre when positive; segmentation crops a bright ball whose support is the mask; whole
test volumes are larger scenes holding a few such balls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dira.config import validate
from dira.data.cache import AppendingCacheWriter, VoxelGrid
from dira.data.prepare.common import BadSamples
from dira.data.prepare.patches import WholeVolume, write_whole_volumes
from dira.data.volumes.geometry import Geometry

CROP = (8, 16, 16)
ATTRS = {"source": "synthetic", "manifest": {"synthetic": True}, "provenance": {"test": True}}
CT_INTENSITY = {"unit": "HU", "window": [-1000, 1000], "scaled_to": [0, 1]}
MR_CHANNELS = ["t1", "t1ce", "t2", "flair"]


def ball(shape: tuple[int, ...], centre: np.ndarray, radius: float) -> np.ndarray:
    grid = np.indices(shape).astype(np.float32)
    return (((grid - np.asarray(centre, np.float32).reshape(-1, 1, 1, 1)) ** 2).sum(0) <= radius**2)


def scene(rng: np.random.Generator, shape: tuple[int, ...], balls: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 in [0, 1], uint8 mask): dark noise with ``balls`` bright balls, the mask their union."""
    mask = np.zeros(shape, bool)
    for _ in range(balls):
        centre = [rng.uniform(2, s - 2) for s in shape]
        mask |= ball(shape, np.asarray(centre), rng.uniform(2.0, 3.5))
    image = rng.normal(0.2, 0.05, shape).astype(np.float32) + 0.6 * mask
    return np.clip(image, 0, 1), mask.astype(np.uint8)


def _writer(path: Path, shape: tuple[int, ...], fields: dict, intensity: dict) -> AppendingCacheWriter:
    axes = "zyx" if len(shape) == 3 else "czyx"
    grid = VoxelGrid(axes, (1.0,) * len(shape), intensity)
    return AppendingCacheWriter(path, shape, {**ATTRS, "dataset": "test", "split": path.stem}, dtype=np.float16,
                                fields=fields, grid=grid)


def write_candidates(path: Path, n: int, seed: int, shape: tuple[int, int, int] = CROP) -> np.ndarray:
    """Candidate crops (``labels``): a third positive, each with a bright ball at its centre. Returns the labels."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 == 0).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.normal(0.2, 0.05, (n, *shape)).astype(np.float32)
    centre = (np.asarray(shape) - 1) / 2
    images[labels == 1] += 0.6 * ball(shape, centre, 3.0)
    with _writer(path, shape, {"labels": (np.uint8, ())}, CT_INTENSITY) as writer:
        writer.append(np.clip(images, 0, 1).astype(np.float16), [f"scan{i // 4}/{i}" for i in range(n)],
                      labels=labels)
    return labels


def write_masked_crops(path: Path, n: int, seed: int, channels: int = 0,
                       shape: tuple[int, int, int] = CROP) -> None:
    """Crops or patches with ``masks``; with ``channels`` the rows are (C, z, y, x) and only the last channel
    (FLAIR) shows the balls, the others are noise."""
    rng = np.random.default_rng(seed)
    pairs = [scene(rng, shape, balls=int(rng.integers(1, 3))) for _ in range(n)]
    images = np.stack([p[0] for p in pairs])
    masks = np.stack([p[1] for p in pairs])
    intensity = CT_INTENSITY
    if channels:
        noise = rng.normal(0.2, 0.05, (n, channels - 1, *shape)).astype(np.float32)
        images = np.concatenate([noise, images[:, None]], axis=1)
        intensity = {"unit": "MR (arbitrary)", "channels": MR_CHANNELS[-channels:]}
    with _writer(path, images.shape[1:], {"masks": (np.uint8, shape)}, intensity) as writer:
        writer.append(images.astype(np.float16), [f"case{i}" for i in range(n)], masks=masks)


def _as_is(case: WholeVolume) -> WholeVolume:
    return case


def write_test_volumes(path: Path, shapes: list[tuple[int, int, int]], seed: int, channels: int = 0) -> None:
    """``test_volumes.h5`` with one case per shape (the layout of dira.data.prepare.patches)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, shape in enumerate(shapes):
        image, mask = scene(rng, shape, balls=3)
        if channels:
            image = np.concatenate([rng.normal(0.2, 0.05, (channels - 1, *shape)), image[None]]).astype(np.float32)
        geometry = Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), ((1, 0, 0), (0, 1, 0), (0, 0, 1)), shape[::-1])
        cases.append(WholeVolume(f"volume-{i}", path, image.astype(np.float16), mask, mask, geometry))
    intensity = {"unit": "MR (arbitrary)", "channels": MR_CHANNELS[-channels:]} if channels else CT_INTENSITY
    grid = VoxelGrid("czyx" if channels else "zyx", (1.0,) * (4 if channels else 3), intensity)
    write_whole_volumes(path, cases, _as_is, 1, {**ATTRS, "dataset": "test", "split": "test"}, grid,
                        BadSamples("error"), "test volumes")


@pytest.fixture(scope="session")
def candidate_dir(tmp_path_factory) -> Path:
    """fpr_{train,val,test}.h5 of a LUNA16 / PE-like candidate task."""
    root = tmp_path_factory.mktemp("fpr")
    for seed, (split, n) in enumerate({"train": 24, "val": 9, "test": 12}.items()):
        write_candidates(root / f"fpr_{split}.h5", n, seed)
    return root


@pytest.fixture(scope="session")
def lidc_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ncs")
    for seed, (split, n) in enumerate({"train": 8, "val": 3, "test": 4}.items()):
        write_masked_crops(root / f"ncs_{split}.h5", n, seed)
    return root


@pytest.fixture(scope="session")
def lits_dir(tmp_path_factory) -> Path:
    """train.h5 / val.h5 patches and two whole test volumes, one smaller than a patch along z."""
    root = tmp_path_factory.mktemp("lits")
    write_masked_crops(root / "train.h5", 8, 0)
    write_masked_crops(root / "val.h5", 3, 1)
    write_test_volumes(root / "test_volumes.h5", [(12, 20, 24), (6, 16, 18)], 2)
    return root


@pytest.fixture(scope="session")
def brats_dir(tmp_path_factory) -> Path:
    """Four-channel rows; only the last channel (FLAIR) shows the tumour balls."""
    root = tmp_path_factory.mktemp("brats")
    write_masked_crops(root / "train.h5", 8, 0, channels=4)
    write_masked_crops(root / "val.h5", 3, 1, channels=4)
    write_test_volumes(root / "test_volumes.h5", [(10, 20, 20)], 2, channels=4)
    return root


@pytest.fixture
def write_crops():
    """The crop writer above, for tests that need caches of their own."""
    return write_masked_crops


TASK_SETTINGS = {"patience": 2, "batch_size": 4, "lr": 0.01}


@pytest.fixture(scope="session")
def config3d() -> dict:
    """A complete, validated config for fast CPU runs (deep-copy before changing it)."""
    return validate({
        "device": "cpu", "threads": 1, "model3d": {"base_width": 2},
        "finetune3d": {"num_workers": 0, "max_epochs": 2,
                       **{task: dict(TASK_SETTINGS) for task in ("luna16", "pe", "lidc", "lits", "brats")}},
    })

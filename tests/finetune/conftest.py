"""Tiny caches of each task type: 32 px images with learnable labels (bright blocks) or masks (bright disks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from dira.config import validate
from dira.data.cache import CacheWriter
from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.sources.chexpert import CHEXPERT_LABELS

IMAGE_SIZE = 32
EVAL_RESIZE = 36  # validation / test images are resized to this before their 32-px crops
SPLIT_SIZES = {"train": 48, "val": 16, "test": 24}


def write_classification_split(path: Path, n: int, seed: int, label_names=CHESTXRAY14_LABELS,
                               absent_classes: Sequence[int] = (), size: int = IMAGE_SIZE) -> None:
    """Class c present <=> a bright block in cell c of a 4×4 grid (6×6 at 32 px); ``absent_classes`` never occur."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(label_names))) < 0.35).astype(np.uint8)
    labels[:, list(absent_classes)] = 0
    cell = size // 4
    with CacheWriter(path, n, size, attrs={"dataset": "chestxray14", "split": path.stem}) as writer:
        for i in range(n):
            image = rng.integers(0, 60, (size, size), dtype=np.uint8)
            for c in np.flatnonzero(labels[i]):
                row, col = divmod(int(c), 4)
                image[row * cell + cell // 8:(row + 1) * cell - cell // 8,
                      col * cell + cell // 8:(col + 1) * cell - cell // 8] = 220
            writer.write_image(i, image, (size, size))
        writer.write_array("ids", [f"{path.stem}_{i:03d}.png" for i in range(n)])
        writer.write_array("labels", labels, label_names=list(label_names))


@pytest.fixture
def write_split():
    """The cache writer above, for tests that need caches of their own."""
    return write_classification_split


@pytest.fixture(scope="session")
def tiny_chestxray14(tmp_path_factory) -> Path:
    """train/val/test caches; Hernia (the last class) never occurs in the test split."""
    root = tmp_path_factory.mktemp("chestxray14_cache")
    for seed, (split, n) in enumerate(SPLIT_SIZES.items()):
        absent = [len(CHESTXRAY14_LABELS) - 1] if split == "test" else []
        write_classification_split(root / f"{split}.h5", n, seed=seed, absent_classes=absent)
    return root


@pytest.fixture(scope="session")
def finetune_config() -> dict:
    """A complete, schema-validated config for fast CPU fine-tuning (deep-copy before changing it)."""
    return validate({
        "device": "cpu", "threads": 1, "model": {"backbone": "resnet18", "input_size": IMAGE_SIZE},
        "finetune": {"batch_size": 16, "num_workers": 0, "max_epochs": 3, "patience": 2, "lr": 1e-3,
                     "eval_resize": EVAL_RESIZE},
    })


# --------------------------------------------------------------------------- segmentation

SEGMENTATION_SIZES = {"train": 24, "val": 8, "test": 12}
DECODER_CHANNELS = [32, 16, 16, 8, 8]  # a small decoder keeps the U-Net runs at a second or two


def write_segmentation_split(path: Path, n: int, seed: int, size: int = IMAGE_SIZE) -> None:
    """A bright disk on noise, the mask its support; every fourth image shows no disk (empty mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.integers(0, 70, (n, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        if i % 4 != 3:
            cy, cx, radius = *rng.uniform(0.3 * size, 0.7 * size, 2), rng.uniform(0.12 * size, 0.25 * size)
            masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            images[i][masks[i] == 1] = rng.integers(170, 230)
    with CacheWriter(path, n, size, attrs={"dataset": "siim", "split": path.stem}) as writer:
        for i in range(n):
            writer.write_image(i, images[i], (size, size))
        writer.write_array("ids", [f"{path.stem}_{i:03d}.dcm" for i in range(n)])
        writer.write_array("masks", masks)


@pytest.fixture
def write_segmentation():
    """The segmentation cache writer above, for tests that need caches of their own."""
    return write_segmentation_split


@pytest.fixture(scope="session")
def tiny_siim(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("siim_cache")
    for seed, (split, n) in enumerate(SEGMENTATION_SIZES.items()):
        write_segmentation_split(root / f"{split}.h5", n, seed=seed)
    return root


@pytest.fixture(scope="session")
def segmentation_config() -> dict:
    return validate({
        "device": "cpu", "threads": 1,
        "model": {"backbone": "resnet18", "decoder_channels": DECODER_CHANNELS, "input_size": IMAGE_SIZE},
        "finetune": {"num_workers": 0, "segmentation": {"batch_size": 8, "max_epochs": 3, "patience": 2}},
    })


# --------------------------------------------------------------------------- CheXpert


def write_chexpert_split(path: Path, n: int, seed: int, uncertain: bool = True) -> np.ndarray:
    """CheXpert codes (1/0/-1/-2) for the 14 observations, positives drawn as bright blocks; returns the codes.

    ``uncertain=False`` writes a test split the way CheXpert's valid set is: certain labels only.
    """
    rng = np.random.default_rng(seed)
    choices = [1, 0, -1, -2] if uncertain else [1, 0]
    codes = rng.choice(choices, size=(n, len(CHEXPERT_LABELS))).astype(np.int8)
    with CacheWriter(path, n, IMAGE_SIZE, attrs={"dataset": "chexpert", "split": path.stem}) as writer:
        for i in range(n):
            image = rng.integers(0, 60, (IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
            for c in np.flatnonzero(codes[i] == 1):
                row, col = divmod(int(c), 4)
                image[row * 8 + 1:row * 8 + 7, col * 8 + 1:col * 8 + 7] = 220
            writer.write_image(i, image, (IMAGE_SIZE, IMAGE_SIZE))
        writer.write_array("ids", [f"patient{i:05d}/study1/view1_frontal.jpg" for i in range(n)])
        writer.write_array("labels", codes, label_names=list(CHEXPERT_LABELS))
    return codes


@pytest.fixture(scope="session")
def tiny_chexpert(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chexpert_cache")
    for seed, (split, n) in enumerate(SPLIT_SIZES.items()):
        write_chexpert_split(root / f"{split}.h5", n, seed=10 + seed, uncertain=split != "test")
    return root

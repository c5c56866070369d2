"""Tiny ChestX-ray14-shaped caches: 32 px images whose labels are drawn as bright blocks (learnable)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from dira.config import validate
from dira.data.cache import CacheWriter
from dira.data.labels import CHESTXRAY14_LABELS

IMAGE_SIZE = 32
SPLIT_SIZES = {"train": 48, "val": 16, "test": 24}


def write_classification_split(path: Path, n: int, seed: int, label_names=CHESTXRAY14_LABELS,
                               absent_classes: Sequence[int] = ()) -> None:
    """Class c present <=> a bright 6×6 block in cell c of a 4×4 grid; ``absent_classes`` never occur."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(label_names))) < 0.35).astype(np.uint8)
    labels[:, list(absent_classes)] = 0
    with CacheWriter(path, n, IMAGE_SIZE, attrs={"dataset": "chestxray14", "split": path.stem}) as writer:
        for i in range(n):
            image = rng.integers(0, 60, (IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
            for c in np.flatnonzero(labels[i]):
                row, col = divmod(int(c), 4)
                image[row * 8 + 1:row * 8 + 7, col * 8 + 1:col * 8 + 7] = 220
            writer.write_image(i, image, (IMAGE_SIZE, IMAGE_SIZE))
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
        "device": "cpu", "threads": 1, "model": {"backbone": "resnet18"},
        "finetune": {"batch_size": 16, "num_workers": 0, "max_epochs": 3, "patience": 2, "lr": 1e-3},
    })

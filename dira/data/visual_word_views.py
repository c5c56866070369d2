"""TransVW's pre-training samples: a visual-word cube distorted for restoration, its pseudo label, its target.

Each sample is (``view``, ``label``, ``target``): ``view`` is TransVW's input (elastic deformation, then one of
local shuffling, non-linear intensity, in- or out-painting; :func:`dira.data.transforms3d.transvw_view`),
``target`` the undistorted cube, ``label`` the visual-word class ``dira discover`` gave it. Cubes are read from the
discovery's HDF5 split (uint8 0..255 or float16 in [0, 1], as the LUNA16 cubes are stored) as float32 (1, z, y, x).

As for the 2D views, every random number of a sample comes from a generator seeded by (seed, epoch, index), so a
resumed run draws exactly the views an uninterrupted one does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dira.data.cache import SplitCache
from dira.data.transforms3d import transvw_view
from dira.errors import InputError
from dira.seeding import derive_seed


def cube_in_unit_range(stored: np.ndarray) -> np.ndarray:
    """A cached cube as float32 in [0, 1]: uint8 rows are 0..255 levels of the window, float rows are already scaled."""
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / 255.0
    return stored.astype(np.float32)


def visual_word_classes(*caches: SplitCache) -> int:
    """The number of pseudo classes: one more than the largest label of any split (labels are 0 .. C - 1)."""
    top = -1
    for cache in caches:
        if not cache.has("labels"):
            raise InputError(f"{cache.path}: no 'labels': not a visual-word cache (dira discover writes them)")
        labels = cache.array("labels")
        if labels.size and labels.min() < 0:
            raise InputError(f"{cache.path}: negative visual-word label {labels.min()}")
        top = max(top, int(labels.max()) if labels.size else -1)
    return top + 1


class VisualWordDataset(Dataset):
    """Pre-training samples of one discovery split; ``views`` is the ``pretrain.transvw.views`` section."""

    def __init__(self, cache: SplitCache, views: dict[str, Any], seed: int, max_images: int | None):
        if not cache.has("labels"):
            raise InputError(f"{cache.path}: no 'labels': not a visual-word cache (dira discover writes them)")
        self.cache, self.views, self.seed = cache, views, seed
        self.labels = cache.array("labels").astype(np.int64)
        self.length = min(len(cache), max_images) if max_images else len(cache)
        self.epoch = 0
        self.restoration = True  # TransVW always restores; the trainer's per-stage switch changes nothing here

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, index))
        cube = cube_in_unit_range(self.cache.image(index))
        view, target, _ = transvw_view(cube, rng, **self.views)
        return {
            "view": torch.from_numpy(np.ascontiguousarray(view, dtype=np.float32)).unsqueeze(0),
            "label": torch.tensor(self.labels[index]),
            "target": torch.from_numpy(target).unsqueeze(0),
        }

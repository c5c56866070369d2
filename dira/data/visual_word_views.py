"""TransVW's pre-training batches: visual-word cubes distorted for restoration, their pseudo labels, their targets.

Each sample is (``view``, ``label``, ``target``): ``view`` is TransVW's input (elastic deformation, then one of
local shuffling, non-linear intensity, in- or out-painting; :func:`dira.data.transforms3d.transvw_view`),
``target`` the undistorted cube, ``label`` the visual-word class ``dira discover`` gave it. Cubes are read from the
discovery's HDF5 split (uint8 0..255 or float16 in [0, 1], as the LUNA16 cubes are stored) as float32 (1, z, y, x).

The loader reads the stored cubes and labels (:class:`dira.data.samples.StoredRows`); the views are made from
the whole batch on the training device (:class:`dira.data.batch_views3d.TransVWBatchViews`), from the trainer's
generator seeded by (seed, epoch, step, rank), so a resumed run draws exactly the views an uninterrupted one does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dira.data.batch_views3d import TransVWBatchViews
from dira.data.cache import SplitCache
from dira.errors import InputError


def cube_in_unit_range(stored: np.ndarray) -> np.ndarray:
    """A cached cube as float32 in [0, 1]: uint8 rows are 0..255 levels of the window, float rows are already scaled.

    The per-sample counterpart of :func:`dira.data.batch_views3d.cubes_in_unit_range` (tests, benchmarks).
    """
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


class VisualWordBatch:
    """TransVW's inputs of a batch of stored rows: ``view`` and ``target`` (B, 1, z, y, x) and ``label`` (B,).

    ``views`` is the ``pretrain.transvw.views`` section. TransVW always restores, so the trainer's per-stage
    ``restoring`` switch changes nothing here.
    """

    def __init__(self, views: dict[str, Any]):
        self.views = TransVWBatchViews(views)

    def __call__(self, rows: dict[str, torch.Tensor], generator: torch.Generator,
                 restoring: bool) -> dict[str, torch.Tensor]:
        return {**self.views(rows["image"], generator), "label": rows["label"]}

"""What the CPU loader gives pre-training: stored rows as they are, the views are made on the training device.

Workers only read rows from the HDF5 split (each worker its own file handle, :class:`SplitCache` reopens after
pickling) and hand back the stored dtype (uint8 images; uint8 or float16 cubes): the smallest thing to copy to a
GPU, and nothing per sample left for a CPU core to compute. :mod:`dira.data.batch_views` (2D) and
:mod:`dira.data.batch_views3d` (3D) turn whole batches of these into the method's inputs on the device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dira.data.cache import SplitCache
from dira.errors import InputError


class StoredRows(Dataset):
    """Rows of one split (``image``) with their position (``index``); with ``labels``, also ``label``."""

    def __init__(self, cache: SplitCache, max_rows: int | None = None, labels: bool = False):
        self.cache = cache
        self.length = min(len(cache), max_rows) if max_rows else len(cache)
        self.labels: np.ndarray | None = None
        if labels:
            if not cache.has("labels"):
                raise InputError(f"{cache.path}: no 'labels': not a visual-word cache (dira discover writes them)")
            self.labels = cache.array("labels").astype(np.int64)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = {"image": torch.from_numpy(np.ascontiguousarray(self.cache.image(index))),
               "index": torch.tensor(index, dtype=torch.int64)}
        if self.labels is not None:
            row["label"] = torch.tensor(self.labels[index])
        return row

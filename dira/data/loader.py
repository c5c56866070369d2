"""The one place that builds pre-training loaders: stored rows, a batch at a time, in exactly the order given.

The loader only reads (the views are made on the training device), so its cost is copying rows out of the
HDF5 page cache. For :class:`StoredRows` a worker gets a whole batch's indices and reads every row straight
into one batch tensor (:meth:`SplitCache.rows`, in shared memory inside a worker), instead of one array per
row that the collate then copies into the batch. Batches are ``indices`` chunked by ``batch_size`` whatever
``num_workers`` is. ``benchmarks/loader.py`` measures it.

Each worker reads through its own HDF5 handle: a ``SplitCache`` unpickled in a worker opens its own, and one
inherited through fork is dropped and reopened in the worker (the handle belongs to the process that opened it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from dira.data.samples import StoredRows


class OrderedBatches(Sampler[list[int]]):
    """``indices`` chunked by ``batch_size``; the last, shorter chunk is kept unless ``drop_last``.

    The order lives here, in the main process, so a loader with persistent workers can be reused across
    epochs: ``set_order`` with the next epoch's indices, then iterate the loader again.
    """

    def __init__(self, indices: Sequence[int], batch_size: int, *, rows: int, drop_last: bool = False,
                 source: str = "the dataset"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.rows, self.drop_last, self.source = batch_size, rows, drop_last, source
        self.set_order(indices)

    def set_order(self, indices: Sequence[int]) -> None:
        """The order of the next pass; every index must be a row of the dataset (checked here, not in a worker)."""
        order = np.asarray(indices)
        if order.size and order.dtype.kind not in "iu":
            raise TypeError(f"{self.source}: indices must be integers, got {order.dtype}")
        order = order.astype(np.int64).reshape(-1)
        bad = order[(order < 0) | (order >= self.rows)]
        if bad.size:
            raise IndexError(f"{self.source}: index {bad[0]} out of range (the dataset has {self.rows} rows)")
        self.order = order.tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.order[start:start + self.batch_size]

    def __len__(self) -> int:
        whole, rest = divmod(len(self.order), self.batch_size)
        return whole + (1 if rest and not self.drop_last else 0)


class StoredBatches(Dataset):
    """:class:`StoredRows` read a batch at a time: the batch dict ``StoredRows`` items collate to."""

    def __init__(self, rows: StoredRows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.rows[index]

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        cache = self.rows.cache
        image = _batch_tensor((len(indices), *cache.shape), cache.dtype)
        cache.rows(indices, out=image.numpy())
        batch = {"image": image, "index": torch.tensor(indices, dtype=torch.int64)}
        if self.rows.labels is not None:
            batch["label"] = torch.from_numpy(self.rows.labels[indices])
        return batch


def row_loader(dataset: Dataset, indices: Sequence[int] | None, batch_size: int, *, num_workers: int,
               pin_memory: bool, seed: int, prefetch_factor: int | None = None, drop_last: bool = False,
               persistent_workers: bool = False) -> DataLoader:
    """Batches of ``dataset`` rows: ``indices`` (all rows in order if None) chunked by ``batch_size``.

    - ``drop_last``: False keeps a last, shorter batch (the trainer passes whole global steps only).
    - ``pin_memory``: pins only where CUDA is available, otherwise ignored (no warning from torch on a CPU).
    - ``prefetch_factor``: batches each worker reads ahead; ignored without workers (torch rejects it there).
    - ``persistent_workers``: keeps the workers between passes, for a loader reused across epochs through
      ``loader.batch_sampler.set_order``; refused for datasets with ``set_epoch``, whose per-epoch state the
      kept workers would never see.
    - ``seed``: the loader's generator (worker seeds); rows themselves involve no randomness.
    - ``num_workers``: 0 reads in the training process. A worker fills each batch in fresh shared memory,
      whose first-touch page faults cost ~5x the copy itself (2.7 vs 0.5 ms per 6.4 MB on the 2-core
      development machine), so workers pay only where cores are free beside the training process.

    An index outside the dataset raises ``IndexError`` naming the file here, before any worker starts.
    """
    cache = getattr(dataset, "cache", None)
    source = str(getattr(cache, "path", f"a dataset of {len(dataset)} rows"))
    sampler = OrderedBatches(range(len(dataset)) if indices is None else indices, batch_size,
                             rows=len(dataset), drop_last=drop_last, source=source)
    workers = num_workers > 0
    if persistent_workers and workers and hasattr(dataset, "set_epoch"):
        raise ValueError(f"{source}: persistent workers would keep the first epoch's copy of a dataset "
                         "with set_epoch; build one loader per epoch instead")
    batched = isinstance(dataset, StoredRows)
    return DataLoader(
        StoredBatches(dataset) if batched else dataset, batch_sampler=sampler, num_workers=num_workers,
        collate_fn=_already_batched if batched else default_collate,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=prefetch_factor if workers else None,
        persistent_workers=persistent_workers and workers,
        generator=torch.Generator().manual_seed(seed),
    )


def _already_batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def _batch_tensor(shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """An uninitialised batch. In a worker, in shared memory, so that sending it to the main process copies
    nothing (as torch's default collate stacks into shared memory). In the main process, numpy's memory:
    numpy asks for transparent huge pages, and filling a fresh 32 MB torch.empty cost 2x the time through
    its page faults (1024² rows, batch 32, THP "madvise")."""
    if get_worker_info() is None:
        return torch.from_numpy(np.empty(shape, dtype))
    torch_dtype = torch.from_numpy(np.empty(0, dtype)).dtype
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * np.dtype(dtype).itemsize)
    return torch.empty(0, dtype=torch_dtype).set_(storage, 0, shape)

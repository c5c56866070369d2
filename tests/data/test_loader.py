"""row_loader: batches are exactly ``indices`` chunked by ``batch_size``, for any number of workers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, default_collate

from dira.data.cache import AppendingCacheWriter, CacheWriter, SplitCache, VoxelGrid
from dira.data.loader import row_loader
from dira.data.samples import StoredRows

SIZE, ROWS, CUBE = 8, 10, (4, 6, 8)
ORDER = [7, 2, 9, 2, 0, 5, 1]  # a repeat and a last, shorter batch of 3


@pytest.fixture(scope="module")
def images_h5(tmp_path_factory):
    """ROWS distinct 8×8 uint8 images written by the 2D writer."""
    path = tmp_path_factory.mktemp("loader") / "train.h5"
    rng = np.random.default_rng(0)
    with CacheWriter(path, ROWS, SIZE, attrs={"dataset": "toy", "split": "train"}) as writer:
        for i in range(ROWS):
            writer.write_image(i, rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8), (SIZE, SIZE))
        writer.write_array("ids", [f"img{i}.png" for i in range(ROWS)])
    return path


@pytest.fixture(scope="module")
def cubes_h5(tmp_path_factory):
    """ROWS float16 cubes with visual-word labels, written by the volume writer."""
    path = tmp_path_factory.mktemp("loader") / "words.h5"
    rng = np.random.default_rng(1)
    attrs = {"dataset": "toy3d", "split": "train", "manifest": {}, "provenance": {}}
    grid = VoxelGrid("zyx", (1.0, 1.0, 1.0), {"unit": "HU", "window": [-1000.0, 400.0]})
    with AppendingCacheWriter(path, CUBE, attrs, dtype=np.float16, fields={"labels": (np.uint8, ())},
                              grid=grid) as writer:
        for first in (0, 6):
            count = 6 if first == 0 else ROWS - 6
            writer.append(rng.random((count, *CUBE)).astype(np.float16), [f"s{first}/{i}" for i in range(count)],
                          labels=rng.integers(0, 5, count).astype(np.uint8))
    return path


def batches(dataset, indices, batch_size=3, **options):
    settings = {"num_workers": 0, "pin_memory": False, "seed": 0, **options}
    return list(row_loader(dataset, indices, batch_size, **settings))


def chunks(indices, batch_size=3):
    return [list(indices[s:s + batch_size]) for s in range(0, len(indices), batch_size)]


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_the_rows_of_indices_in_order(images_h5, workers):
    cache = SplitCache(images_h5)
    got = batches(StoredRows(cache), ORDER, num_workers=workers)
    assert [b["index"].tolist() for b in got] == chunks(ORDER) == [[7, 2, 9], [2, 0, 5], [1]]
    for batch in got:
        assert batch["image"].dtype == torch.uint8 and batch["index"].dtype == torch.int64
        assert np.array_equal(batch["image"].numpy(), np.stack([cache.image(i) for i in batch["index"].tolist()]))


@pytest.mark.parametrize("workers", [0, 2])
def test_cubes_and_labels_equal_the_collated_items(cubes_h5, workers):
    rows = StoredRows(SplitCache(cubes_h5), labels=True)
    got = batches(rows, ORDER, num_workers=workers)
    for batch, chunk in zip(got, chunks(ORDER), strict=True):
        reference = default_collate([rows[i] for i in chunk])  # what StoredRows items collate to
        assert batch.keys() == reference.keys() == {"image", "index", "label"}
        for key, value in reference.items():
            assert batch[key].dtype == value.dtype and torch.equal(batch[key], value)
    assert [b["label"].tolist() for b in got] == [rows.labels[c].tolist() for c in chunks(ORDER)]


def test_any_number_of_workers_gives_the_same_batches(images_h5):
    order = np.random.default_rng(3).permutation(ROWS).tolist() * 2
    runs = [batches(StoredRows(SplitCache(images_h5)), order, 4, num_workers=w) for w in (0, 1, 2)]
    for run in runs[1:]:
        assert len(run) == len(runs[0]) == 5
        assert all(torch.equal(a["image"], b["image"]) and torch.equal(a["index"], b["index"])
                   for a, b in zip(run, runs[0], strict=True))


def test_last_short_batch_is_kept_unless_drop_last(images_h5):
    rows = StoredRows(SplitCache(images_h5))
    kept = row_loader(rows, ORDER, 3, num_workers=0, pin_memory=False, seed=0)
    dropped = row_loader(rows, ORDER, 3, num_workers=0, pin_memory=False, seed=0, drop_last=True)
    assert len(kept) == 3 and [b["index"].tolist() for b in kept][-1] == [1]
    assert len(dropped) == 2 and [b["index"].tolist() for b in dropped] == [[7, 2, 9], [2, 0, 5]]


def test_no_indices_means_every_row_in_order(images_h5):
    got = batches(StoredRows(SplitCache(images_h5), max_rows=7), None, 4)
    assert [b["index"].tolist() for b in got] == [[0, 1, 2, 3], [4, 5, 6]]


def test_pin_memory_is_used_only_where_cuda_is(images_h5):
    loader = row_loader(StoredRows(SplitCache(images_h5)), ORDER, 3, num_workers=0, pin_memory=True, seed=0)
    assert loader.pin_memory == torch.cuda.is_available()
    assert sum(len(b["image"]) for b in loader) == len(ORDER)
    assert not row_loader(StoredRows(SplitCache(images_h5)), ORDER, 3, num_workers=0, pin_memory=False,
                          seed=0).pin_memory


@pytest.mark.parametrize("bad", [[0, ROWS], [-1, 2], [3, 7]])
def test_an_index_outside_the_dataset_names_the_file(images_h5, bad):
    rows = StoredRows(SplitCache(images_h5), max_rows=7)  # 7 is a row of the file but not of the dataset
    with pytest.raises(IndexError, match=f"{images_h5}.*out of range"):
        row_loader(rows, bad, 2, num_workers=0, pin_memory=False, seed=0)


def test_non_integer_indices_are_refused(images_h5):
    with pytest.raises(TypeError, match="integers"):
        row_loader(StoredRows(SplitCache(images_h5)), [0.0, 1.5], 2, num_workers=0, pin_memory=False, seed=0)


def test_split_cache_rows_reads_any_order_and_names_the_file(images_h5):
    cache = SplitCache(images_h5)
    assert np.array_equal(cache.rows([9, 0, 9]), np.stack([cache.image(i) for i in (9, 0, 9)]))
    with pytest.raises(IndexError, match=f"{images_h5}: row {ROWS} out of range"):
        cache.rows([1, ROWS])
    with pytest.raises(ValueError, match="buffer"):
        cache.rows([1], out=np.empty((2, SIZE, SIZE), np.uint8))


class HandleProbe(Dataset):
    """Which process reads, and through which h5py file object: not a StoredRows, so read row by row."""

    def __init__(self, cache: SplitCache):
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": torch.from_numpy(self.cache.image(index)), "pid": torch.tensor(os.getpid()),
                "handle": torch.tensor(id(self.cache.file)), "opened_in": torch.tensor(self.cache._opened_in)}


def test_workers_read_through_their_own_handle_not_the_parents(images_h5):
    cache = SplitCache(images_h5)
    parent = cache.file  # opened in the main process before the workers fork
    got = batches(HandleProbe(cache), list(range(ROWS)), 1, num_workers=2)
    pids = {int(b["pid"]) for b in got}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(int(b["handle"]) != id(parent) and int(b["opened_in"]) == int(b["pid"]) for b in got)
    assert np.array_equal(torch.cat([b["image"] for b in got]).numpy(), cache.images())
    assert cache.file is parent and np.array_equal(cache.image(3), cache.rows([3])[0])  # still the parent's


def test_persistent_workers_follow_the_order_set_for_the_next_pass(images_h5):
    loader = row_loader(StoredRows(SplitCache(images_h5)), ORDER, 3, num_workers=2, pin_memory=False, seed=0,
                        persistent_workers=True)
    assert [b["index"].tolist() for b in loader] == [[7, 2, 9], [2, 0, 5], [1]]
    loader.batch_sampler.set_order([4, 3, 8, 6])
    assert len(loader) == 2 and [b["index"].tolist() for b in loader] == [[4, 3, 8], [6]]


def test_persistent_workers_are_refused_for_datasets_with_epochs(images_h5):
    class Epochs(HandleProbe):
        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    with pytest.raises(ValueError, match="set_epoch"):
        row_loader(Epochs(SplitCache(images_h5)), None, 2, num_workers=2, pin_memory=False, seed=0,
                   persistent_workers=True)

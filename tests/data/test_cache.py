"""CacheWriter writes complete split files or nothing; SplitCache reads them back."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dira.data.cache import CacheWriter, SplitCache
from dira.errors import InputError

SIZE = 8


def write(path, n=3, ids=True, images=None, **arrays):
    with CacheWriter(path, n, SIZE, attrs={"dataset": "toy", "manifest": {"files": 2}}) as writer:
        for i in range(n if images is None else images):
            writer.write_image(i, np.full((SIZE, SIZE), i, np.uint8), (100 + i, 200 + i))
        if ids:
            writer.write_array("ids", np.array([f"img{i}.png" for i in range(n)]))
        for name, data in arrays.items():
            writer.write_array(name, data)


def test_round_trip(tmp_path):
    path = tmp_path / "train.h5"
    write(path, labels=np.eye(3, 4, dtype=np.uint8), boxes=np.zeros((0, 4), np.float32))
    cache = SplitCache(path)
    assert len(cache) == 3 and list(cache.ids) == ["img0.png", "img1.png", "img2.png"]
    assert cache.image(2).tolist() == [[2] * SIZE] * SIZE
    assert cache.array("original_size").tolist() == [[100, 200], [101, 201], [102, 202]]
    assert cache.array("boxes").shape == (0, 4)
    assert cache.attrs == {"dataset": "toy", "manifest": {"files": 2}}
    clone = pickle.loads(pickle.dumps(cache))  # what a DataLoader worker receives
    assert np.array_equal(clone.images(), cache.images())
    cache.close()
    clone.close()


@pytest.mark.parametrize("spoil, match", [
    (dict(ids=False), "without 'ids'"),
    (dict(images=2), "1 of 3 images never written"),
    (dict(labels=np.zeros((2, 14), np.uint8)), "'labels' has 2 rows for 3 images"),
])
def test_incomplete_cache_never_replaces_the_old_one(tmp_path, spoil, match):
    path = tmp_path / "train.h5"
    write(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=match):
        write(path, **spoil)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["train.h5"]  # no temporary file left


def test_error_inside_the_block_leaves_no_file(tmp_path):
    path = tmp_path / "val.h5"
    with pytest.raises(RuntimeError), CacheWriter(path, 1, SIZE, attrs={}):
        raise RuntimeError("decoding failed")
    assert list(tmp_path.iterdir()) == []


def test_wrong_image_shape_is_refused(tmp_path):
    writer = CacheWriter(tmp_path / "x.h5", 1, SIZE, {})
    with pytest.raises(ValueError, match="expected uint8 8x8"), writer:
        writer.write_image(0, np.zeros((SIZE, SIZE + 1), np.uint8), (1, 1))
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.h5: HDF5 cache not found"):
        SplitCache(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5: not a readable HDF5 file"):
        SplitCache(tmp_path / "text.h5")


def layout(path) -> dict:
    """Every dataset's dtype, shape, chunking, maxshape and filters, and the file's attributes: what readers see."""
    import h5py

    with h5py.File(path, "r") as f:
        datasets = {name: (str(ds.dtype) if h5py.check_string_dtype(ds.dtype) is None else "utf-8", ds.shape,
                           ds.chunks, ds.maxshape, ds.compression, dict(ds.attrs))
                    for name, ds in f.items()}
        return {"datasets": datasets, "attrs": dict(f.attrs)}


def test_2d_layout_is_the_one_2d_readers_rely_on(tmp_path):
    """Pinned from the layout written before caches took any row shape: a generalised writer changes no 2D file."""
    path = tmp_path / "train.h5"
    write(path, labels=np.eye(3, 4, dtype=np.uint8), patients=np.arange(3, dtype=np.int64))
    assert layout(path) == {
        "datasets": {
            "images": ("uint8", (3, SIZE, SIZE), (1, SIZE, SIZE), (3, SIZE, SIZE), None, {}),
            "original_size": ("int32", (3, 2), None, (3, 2), None, {}),
            "ids": ("utf-8", (3,), None, (3,), None, {}),
            "labels": ("uint8", (3, 4), None, (3, 4), None, {}),
            "patients": ("int64", (3,), None, (3,), None, {}),
        },
        "attrs": {"dataset": "toy", "manifest": '{"files": 2}'},
    }
    cache = SplitCache(path)
    assert (cache.shape, cache.dtype, cache.grid) == ((SIZE, SIZE), np.uint8, None)
    cache.close()


def test_empty_2d_split_is_contiguous_as_before(tmp_path):
    path = tmp_path / "val.h5"
    write(path, n=0)
    assert layout(path)["datasets"]["images"] == ("uint8", (0, SIZE, SIZE), None, (0, SIZE, SIZE), None, {})


def test_2d_rows_need_their_original_size(tmp_path):
    writer = CacheWriter(tmp_path / "x.h5", 1, SIZE, {})
    with pytest.raises(ValueError, match=r"x\.h5: image 0: original_size is required for 2D rows"), writer:
        writer.write_image(0, np.zeros((SIZE, SIZE), np.uint8))
    assert list(tmp_path.iterdir()) == []

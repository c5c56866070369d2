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

"""Volumetric caches: rows of any shape and dtype, appended while their number is unknown, atomic, one chunk a row."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

import dira
from dira.data.cache import AppendingCacheWriter, CacheWriter, SplitCache, VoxelGrid
from dira.errors import InputError

SHAPE = (4, 6, 8)  # z, y, x: small, but every axis a different length so that a transposition shows
GRID = VoxelGrid("zyx", (1.0, 1.0, 1.0), {"unit": "HU", "window": [-1000, 400], "scaled_to": [0, 1]})
ATTRS = {"dataset": "toy3d", "source": "synthetic", "manifest": {"scans": 3}, "provenance": {"seed": 0}}
FIELDS = {"labels": (np.uint8, ()), "centres_zyx": (np.float32, (3,)), "masks": (np.uint8, SHAPE)}


def crops(scan: int, k: int, dtype) -> np.ndarray:
    """k crops whose every voxel says which scan and crop it came from."""
    base = np.arange(np.prod(SHAPE)).reshape(SHAPE) % 7
    return np.array([base + 10 * scan + c for c in range(k)], dtype).reshape(k, *SHAPE)


def append_scan(writer: AppendingCacheWriter, scan: int, k: int, dtype) -> None:
    writer.append(crops(scan, k, dtype), [f"scan{scan}/{c}" for c in range(k)], labels=np.arange(k) % 2,
                  centres_zyx=np.full((k, 3), scan, np.float32), masks=np.ones((k, *SHAPE), np.uint8))


def write(path, batches=(3, 0, 5, 1), dtype=np.float16, fail_after: int | None = None) -> None:
    with AppendingCacheWriter(path, SHAPE, ATTRS, dtype=dtype, fields=FIELDS, grid=GRID) as writer:
        for scan, k in enumerate(batches):
            if scan == fail_after:
                raise RuntimeError("scan unreadable")
            append_scan(writer, scan, k, dtype)
        writer.write_array("source_ids", [f"scan{s}" for s in range(len(batches))])


@pytest.mark.parametrize("dtype", [np.float16, np.uint8])
def test_rows_of_unknown_count_round_trip(tmp_path, dtype):
    path = tmp_path / "train.h5"
    write(path, dtype=dtype)
    cache = SplitCache(path)
    assert (len(cache), cache.shape, cache.dtype) == (9, SHAPE, np.dtype(dtype))
    expected = np.concatenate([crops(s, k, dtype) for s, k in enumerate((3, 0, 5, 1))])
    for i in range(9):
        assert cache.image(i).dtype == dtype
        np.testing.assert_array_equal(cache.image(i), expected[i])
    assert list(cache.ids) == [f"scan0/{c}" for c in range(3)] + [f"scan2/{c}" for c in range(5)] + ["scan3/0"]
    assert cache.array("labels").tolist() == [0, 1, 0, 0, 1, 0, 1, 0, 0]
    assert cache.array("centres_zyx")[:, 0].tolist() == [0] * 3 + [2] * 5 + [3]
    assert cache.array("masks").shape == (9, *SHAPE)
    assert list(cache.array("source_ids")) == ["scan0", "scan1", "scan2", "scan3"]
    clone = pickle.loads(pickle.dumps(cache))  # what a DataLoader worker receives, after the parent has read
    np.testing.assert_array_equal(clone.image(8), expected[8])
    cache.close()
    clone.close()


def test_one_row_is_one_chunk(tmp_path):
    """A random crop read during training reads one chunk, holding exactly that row."""
    path = tmp_path / "train.h5"
    write(path, dtype=np.uint8)
    with h5py.File(path, "r") as f:
        for name in ("images", "masks"):
            ds = f[name]
            assert (ds.chunks, ds.maxshape, ds.compression) == ((1, *SHAPE), (None, *SHAPE), None)
            assert ds.id.get_num_chunks() == len(ds) == 9
            info = ds.id.get_chunk_info_by_coord((5, 0, 0, 0))
            assert info.chunk_offset == (5, 0, 0, 0) and info.size == np.prod(SHAPE)  # uint8: one byte a voxel
        assert f["ids"].maxshape == (None,) and f["labels"].chunks[0] > 1  # small rows share chunks


def test_attributes_round_trip(tmp_path):
    path = tmp_path / "val.h5"
    write(path)
    cache = SplitCache(path)
    attrs = cache.attrs
    assert cache.grid == GRID
    assert {k: attrs[k] for k in ATTRS} == ATTRS
    assert (attrs["axes"], attrs["dira_version"], attrs["intensity"]) == ("zyx", dira.__version__, GRID.intensity)
    assert attrs["spacing_mm"].dtype == np.float64 and attrs["spacing_mm"].tolist() == [1.0, 1.0, 1.0]
    cache.close()


def test_an_empty_split_has_every_dataset(tmp_path):
    path = tmp_path / "test.h5"
    write(path, batches=())
    cache = SplitCache(path)
    assert len(cache) == 0 and cache.array("masks").shape == (0, *SHAPE) and cache.array("labels").shape == (0,)
    cache.close()


def test_exception_mid_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "train.h5"
    write(path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="scan unreadable"):
        write(path, batches=(2, 7, 4), fail_after=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["train.h5"]  # no temporary file left


@pytest.mark.parametrize("spoil, match", [
    (dict(images=np.zeros((2, *SHAPE), np.float32)), r"expected float16 4x6x8, got float32"),
    (dict(images=np.zeros(SHAPE, np.float16)), r"append takes a batch \(k, 4, 6, 8\)"),
    (dict(ids=["a"]), "1 ids for 2 rows"),
    (dict(labels=None), r"append got fields \['centres_zyx', 'masks'\]"),
    (dict(centres_zyx=np.zeros((2, 2), np.float32)), r"'centres_zyx' has shape \(2, 2\), expected \(2, 3\)"),
    (dict(labels=np.array([0.5, 1.5])), "'labels' is float64, the cache stores uint8"),
    (dict(labels=np.array([0, 256])), "'labels' has values outside uint8's range"),
])
def test_bad_rows_are_refused_naming_the_file(tmp_path, spoil, match):
    batch = dict(images=np.zeros((2, *SHAPE), np.float16), ids=["a", "b"], labels=np.zeros(2, np.uint8),
                 centres_zyx=np.zeros((2, 3), np.float32), masks=np.zeros((2, *SHAPE), np.uint8))
    batch.update(spoil)
    batch = {k: v for k, v in batch.items() if v is not None}
    with pytest.raises(ValueError, match=r"bad\.h5: .*" + match), \
            AppendingCacheWriter(tmp_path / "bad.h5", SHAPE, ATTRS, dtype=np.float16, fields=FIELDS,
                                 grid=GRID) as writer:
        writer.append(**batch)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(grid=None), r"rows of shape \(4, 6, 8\) need a VoxelGrid"),
    (dict(grid=VoxelGrid("yx", (1.0, 1.0), {"unit": "HU"})), "axes 'yx' do not name the 3 axes"),
    (dict(grid=VoxelGrid("zzx", (1.0, 1.0, 1.0), {"unit": "HU"})), "axes 'zzx' do not name the 3 axes"),
    (dict(grid=VoxelGrid("zyx", (1.0, 0.0, 1.0), {"unit": "HU"})), "spacing_mm .* must be 3 positive"),
    (dict(grid=VoxelGrid("zyx", (1.0, 1.0, 1.0), {})), "intensity must be a non-empty mapping"),
    (dict(attrs={"dataset": "toy3d"}), "needs the attributes manifest, provenance"),
    (dict(fields={"ids": (np.int64, ())}), r"field names \['ids'\] are reserved"),
    (dict(shape=(4, 0, 8)), "a row's shape must be positive integers"),
])
def test_bad_layouts_are_refused_before_any_file(tmp_path, kwargs, match):
    settings = {**dict(shape=SHAPE, attrs=ATTRS, dtype=np.uint8, fields=FIELDS, grid=GRID), **kwargs}
    with pytest.raises(ValueError, match=r"x\.h5: .*" + match):
        AppendingCacheWriter(tmp_path / "x.h5", settings.pop("shape"), settings.pop("attrs"), **settings)
    assert list(tmp_path.iterdir()) == []


def test_fixed_count_writer_takes_3d_rows(tmp_path):
    """When the number of crops is known up front CacheWriter writes them: no 2D original_size, the grid's attrs."""
    path = tmp_path / "train.h5"
    with CacheWriter(path, 2, SHAPE, ATTRS, dtype=np.float16, grid=GRID) as writer:
        for i in range(2):
            writer.write_image(i, crops(i, 1, np.float16)[0])
        writer.write_array("ids", ["a", "b"])
    cache = SplitCache(path)
    assert (cache.shape, cache.dtype, cache.grid, cache.has("original_size")) == (SHAPE, np.float16, GRID, False)
    assert cache.file["images"].chunks == (1, *SHAPE)
    np.testing.assert_array_equal(cache.image(1), crops(1, 1, np.float16)[0])
    cache.close()
    with pytest.raises(ValueError, match="original_size is only for 2D rows"), \
            CacheWriter(tmp_path / "y.h5", 1, SHAPE, ATTRS, dtype=np.float16, grid=GRID) as writer:
        writer.write_image(0, crops(0, 1, np.float16)[0], (1, 1))


def test_a_3d_cache_without_its_grid_is_named(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["ids"] = np.zeros((1, *SHAPE), np.uint8), np.array([b"a"])
    cache = SplitCache(path)
    with pytest.raises(InputError, match=r"foreign\.h5: rows of shape \(4, 6, 8\) but no 'axes' attribute"):
        cache.grid  # noqa: B018
    cache.close()

"""write_row_caches: sources yielding any number of rows each, decoded in workers, bad sources left out in one pass."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from dira.data.cache import SplitCache, VoxelGrid
from dira.data.prepare.common import BadSamples
from dira.data.prepare.rows import Row, RowLayout, RowPlan, write_row_caches
from dira.errors import InputError

CROP = (2, 4, 4)  # z, y, x
LAYOUT = RowLayout(CROP, np.float16, {"labels": (np.uint8, ()), "centres_zyx": (np.int32, (3,))},
                   VoxelGrid("zyx", (1.0, 1.0, 1.0), {"scaled_to": [0, 1], "from": "uint8 / 255"}))
ATTRS = {"dataset": "toy3d", "source": "synthetic", "manifest": {"scans": 5}, "provenance": {"seed": 0}}
MARKS = {254: 0, 255: 1}  # voxel value that marks a crop centre -> the crop's label


@dataclass(frozen=True)
class NpyScan:
    """A scan stored as .npy: a crop around every marked voxel, so the count is known only once it is read."""

    file: Path
    id: str
    wrong_dtype: bool = False

    def rows(self) -> Iterator[Row]:
        try:
            volume = np.load(self.file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"{self.file}: unreadable scan ({err})") from None
        for z, y, x in np.argwhere(np.isin(volume, list(MARKS))):
            crop = volume[z - 1:z + 1, y - 2:y + 2, x - 2:x + 2]
            image = crop.astype(np.float32 if self.wrong_dtype else np.float16) / np.float16(255)
            fields = {"labels": MARKS[int(volume[z, y, x])], "centres_zyx": (z, y, x)}
            yield Row(image, f"{self.id}/{z}-{y}-{x}", fields)


def scan(root: Path, name: str, centres: list[tuple[int, int, int]], **kwargs) -> NpyScan:
    volume = np.zeros((6, 8, 8), np.uint8)
    for i, (z, y, x) in enumerate(centres):
        volume[z, y, x] = 255 - i % 2
    np.save(root / f"{name}.npy", volume)
    return NpyScan(root / f"{name}.npy", name, **kwargs)


@pytest.fixture
def plans(tmp_path) -> list[RowPlan]:
    root = tmp_path / "raw"
    root.mkdir()
    return [RowPlan("train", [scan(root, "a", [(2, 3, 3), (3, 4, 5), (4, 5, 4)]), scan(root, "b", []),
                              scan(root, "c", [(1, 2, 2)])]),
            RowPlan("val", [scan(root, "d", [(2, 2, 5), (4, 4, 4)])]),
            RowPlan("test", [])]


def describe(path: Path) -> dict:
    cache = SplitCache(path)
    out = {"ids": list(cache.ids), "images": cache.images(), "attrs": {k: str(v) for k, v in cache.attrs.items()},
           **{name: cache.array(name) for name in ("labels", "centres_zyx", "source_index", "source_ids")}}
    cache.close()
    return out


def test_rows_of_every_source_land_in_their_split(plans, tmp_path):
    out = tmp_path / "h5"
    written = write_row_caches(plans, out, LAYOUT, 1, ATTRS, "toy3d")
    assert [len(p.sources) for p in written] == [3, 1, 0]
    train = describe(out / "train.h5")
    assert train["ids"] == ["a/2-3-3", "a/3-4-5", "a/4-5-4", "c/1-2-2"]
    assert train["labels"].tolist() == [1, 0, 1, 1] and train["centres_zyx"][1].tolist() == [3, 4, 5]
    assert train["source_index"].tolist() == [0, 0, 0, 2] and list(train["source_ids"]) == ["a", "b", "c"]
    assert train["images"].shape == (4, *CROP) and train["images"].dtype == np.float16
    assert train["images"][0, 1, 2, 2] == 1.0  # the marked centre voxel, 255 / 255
    assert train["attrs"]["split"] == "train" and train["attrs"]["axes"] == "zyx"
    assert len(SplitCache(out / "val.h5")) == 2 and len(SplitCache(out / "test.h5")) == 0


def test_workers_write_the_same_caches(plans, tmp_path):
    write_row_caches(plans, tmp_path / "one", LAYOUT, 1, ATTRS, "toy3d")
    write_row_caches(plans, tmp_path / "two", LAYOUT, 2, ATTRS, "toy3d")
    for split in ("train", "val", "test"):
        one, two = describe(tmp_path / "one" / f"{split}.h5"), describe(tmp_path / "two" / f"{split}.h5")
        for key in one:
            np.testing.assert_array_equal(np.asarray(one[key], object), np.asarray(two[key], object), err_msg=key)


def test_a_bad_source_is_left_out_under_skip(plans, tmp_path):
    plans[0].sources[0].file.write_text("not a scan")
    bad = BadSamples("skip")
    written = write_row_caches(plans, tmp_path / "h5", LAYOUT, 1, ATTRS, "toy3d", bad_samples=bad)
    assert [s.id for s in written[0].sources] == ["b", "c"]
    assert [(b.id, b.file.name) for b in bad.samples] == [("a", "a.npy")] and "unreadable scan" in bad.samples[0].reason
    train = describe(tmp_path / "h5" / "train.h5")
    assert train["ids"] == ["c/1-2-2"] and train["source_index"].tolist() == [1]
    assert list(train["source_ids"]) == ["b", "c"]


def test_a_bad_source_stops_everything_under_error(plans, tmp_path):
    out = tmp_path / "h5"
    write_row_caches(plans, out, LAYOUT, 1, ATTRS, "toy3d")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    plans[1].sources[0].file.write_text("not a scan")
    with pytest.raises(InputError, match=r"d\.npy: unreadable scan"):
        write_row_caches(plans, out, LAYOUT, 1, ATTRS, "toy3d")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old caches kept, no temporary files


def test_a_row_that_breaks_the_layout_names_its_source(plans, tmp_path):
    plans[1].sources[0] = NpyScan(plans[1].sources[0].file, "d", wrong_dtype=True)
    with pytest.raises(ValueError, match=r"d\.npy: row 'd/2-2-5': expected float16 \(2, 4, 4\)"):
        write_row_caches(plans, tmp_path / "h5", LAYOUT, 1, ATTRS, "toy3d")
    assert not (tmp_path / "h5").exists() or list((tmp_path / "h5").iterdir()) == []


def test_one_chunk_per_row(plans, tmp_path):
    write_row_caches(plans, tmp_path, LAYOUT, 1, ATTRS, "toy3d")
    with h5py.File(tmp_path / "train.h5", "r") as f:
        assert f["images"].chunks == (1, *CROP) and f["images"].id.get_num_chunks() == 4

"""`prepare siim`: seeded split recorded in splits.json, nearest-resized images and united masks, bad samples."""

from __future__ import annotations

import csv
import hashlib
import json
import re

import h5py
import numpy as np
import pydicom
import pytest

from dira.cli import main
from dira.data.cache import SplitCache
from dira.data.prepare import prepare_dataset
from dira.data.prepare.common import SplitPlan, split_images
from dira.data.sources.siim import load_mask, read_siim
from dira.errors import InputError

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def caches(siim_caches):
    opened = {split: SplitCache(siim_caches / f"{split}.h5") for split in SPLITS}
    yield opened
    for cache in opened.values():
        cache.close()


def nearest(array: np.ndarray, size: int) -> np.ndarray:
    """Nearest neighbour written out: the source pixel under each output pixel's centre."""
    rows = ((np.arange(size) + 0.5) * array.shape[0] / size).astype(int)
    cols = ((np.arange(size) + 0.5) * array.shape[1] / size).astype(int)
    return array[np.ix_(rows, cols)]


def test_caches_hold_each_image_once_as_recorded_in_splits_json(caches, siim_caches, siim_root, siim_spec):
    splits = json.loads((siim_caches / "splits.json").read_text())
    assert {k: splits[k] for k in ("dataset", "seed", "test_fraction", "val_fraction")} == {
        "dataset": "siim", "seed": 0, "test_fraction": 0.2, "val_fraction": 0.1}
    ids = {split: list(caches[split].ids) for split in SPLITS}
    assert ids == {split: splits[split] for split in SPLITS}
    assert sorted(i for split in SPLITS for i in ids[split]) == sorted(read_siim(siim_root).listed)
    assert not set(ids["train"]) & set(ids["val"]) and not set(ids["train"] + ids["val"]) & set(ids["test"])
    assert (len(ids["test"]), len(ids["val"])) == (round(0.2 * siim_spec.images), round(0.1 * 24))
    assert (siim_caches / "bad_samples.csv").read_text() == "file,id,reason\n"


def test_images_and_masks_are_the_dicoms_and_united_rows_resized_by_nearest_neighbour(caches, siim_root, siim_spec):
    index, size = read_siim(siim_root), siim_spec.cache_size
    for cache in caches.values():
        images, masks, labels = cache.images(), cache.array("masks"), cache.array("labels")
        assert masks.dtype == np.uint8 and masks.shape == images.shape == (len(cache), size, size)
        assert set(np.unique(masks)) <= {0, 1} and cache.label_names == ["Pneumothorax"]
        assert np.all(cache.array("original_size") == siim_spec.dicom_size)
        for row, image_id in enumerate(cache.ids):
            image = index.images[image_id]
            assert np.array_equal(images[row], nearest(pydicom.dcmread(image.dicom).pixel_array, size))
            assert np.array_equal(masks[row], nearest(load_mask(image, index.rle_csv), size))
            assert labels[row, 0] == image.positive == masks[row].any()


def test_cached_masks_lie_on_the_dark_pneumothorax(caches):
    from scipy.ndimage import binary_dilation

    positives = 0
    for cache in caches.values():
        for image, mask in zip(cache.images(), cache.array("masks").astype(bool), strict=True):
            if mask.any():
                ring = binary_dilation(mask, iterations=2) & ~mask
                assert image[mask].mean() < image[ring].mean() - 20
                positives += 1
    assert positives >= 5


def test_attributes_record_the_source_and_settings(caches, siim_root, siim_spec):
    digest = hashlib.sha256((siim_root / "train-rle.csv").read_bytes()).hexdigest()
    for split, cache in caches.items():
        attrs = cache.attrs
        assert (attrs["dataset"], attrs["split"], attrs["cache_size"], attrs["source"], attrs["resampling"]) == (
            "siim", split, siim_spec.cache_size, "synthetic", "nearest")
        assert attrs["manifest"]["files"]["train-rle.csv"]["sha256"] == digest
        assert attrs["manifest"]["synthetic"]["seed"] == siim_spec.seed
        assert attrs["provenance"]["config"]["datasets"]["siim"]["test_fraction"] == 0.2


def test_same_seed_same_split_other_seed_other_split(siim_root, siim_caches, tmp_path, prepare_config):
    prepare_dataset("siim", siim_root, tmp_path / "same", prepare_config(cache_size=32))
    prepare_dataset("siim", siim_root, tmp_path / "other", prepare_config(cache_size=32, split_seed=1))
    assert (tmp_path / "same" / "splits.json").read_bytes() == (siim_caches / "splits.json").read_bytes()
    other = json.loads((tmp_path / "other" / "splits.json").read_text())
    assert other["seed"] == 1 and other["test"] != json.loads((siim_caches / "splits.json").read_text())["test"]


def test_split_fractions_and_independence_from_listing_order():
    ids = [f"img{i:04d}" for i in range(1000)]
    splits = split_images(ids, test_fraction=0.2, val_fraction=0.1, seed=7)
    assert [len(splits[s]) for s in SPLITS] == [720, 80, 200]
    assert sorted(i for split in SPLITS for i in splits[split]) == ids
    assert split_images(ids[::-1], 0.2, 0.1, seed=7) == splits
    assert split_images(ids, 0.2, 0.1, seed=8)["test"] != splits["test"]
    tiny = split_images(["a", "b", "c"], 0.2, 0.1, seed=0)
    assert all(len(tiny[s]) == 1 for s in SPLITS)  # every split gets an image, however small the set


def test_a_plan_less_some_rows_renumbers_its_boxes():
    plan = SplitPlan("test", ["a", "b", "c"], paths=["a.png", "b.png", "c.png"], labels=np.eye(3, dtype=np.uint8),
                     boxes=np.arange(12, dtype=np.float32).reshape(3, 4), box_index=np.array([0, 2, 2]),
                     box_labels=np.array([0, 1, 2]))
    less = plan.without({1})
    assert less.ids == ["a", "c"] and [s.file.name for s in less.samples] == ["a.png", "c.png"]
    assert less.box_index.tolist() == [0, 1, 1] and np.array_equal(less.boxes, plan.boxes)
    assert np.array_equal(less.labels, plan.labels[[0, 2]])
    less = plan.without({0})
    assert less.box_index.tolist() == [1, 1] and less.box_labels.tolist() == [1, 2]


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert main(["synth", "siim", "--out", str(tmp_path / "raw"), "--count", "12", "--image-size", "64"]) == 0
    assert main(["prepare", "siim", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "h5"),
                 "--config", '{"prepare": {"workers": 1}, "datasets": {"siim": {"cache_size": 32}}}']) == 0
    assert "siim (synthetic): train" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "h5").iterdir()) == [
        "bad_samples.csv", "splits.json", "test.h5", "train.h5", "val.h5"]


# ---- bad samples: stop naming the file and row, or leave the sample out and list it -------------------------

def _image(root, positive: bool):
    index = read_siim(root)
    return next(im for _, im in sorted(index.images.items()) if im.positive == positive and len(im.encoded) == 1)


def missing_image(root):
    image = _image(root, positive=True)
    image.dicom.unlink()
    return image.image_id, root / "train-rle.csv", rf"line {image.lines[0]}: image {image.image_id} not found"


def garbage_dicom(root):
    image = _image(root, positive=False)
    image.dicom.write_bytes(b"not a DICOM file " * 40)
    return image.image_id, image.dicom, "unreadable DICOM"


def truncated_dicom(root):  # the header reads, the pixel data does not: found only while decoding
    image = _image(root, positive=True)
    image.dicom.write_bytes(image.dicom.read_bytes()[:-700])
    return image.image_id, image.dicom, "unreadable DICOM .*less than expected"


def overflowing_rle(root):
    image = _image(root, positive=False)
    path = root / "train-rle.csv"
    lines = path.read_text().splitlines()
    n_pixels = image.height * image.width
    lines[image.lines[0] - 1] = f"{image.image_id}, {n_pixels - 3} 2 0 5"
    path.write_text("\n".join(lines) + "\n")
    return image.image_id, path, rf"line {image.lines[0]}: image {image.image_id}: RLE runs end at pixel {n_pixels + 4}"


DAMAGE = [missing_image, garbage_dicom, truncated_dicom, overflowing_rle]


@pytest.mark.parametrize("damage", DAMAGE)
def test_bad_sample_stops_prepare_naming_file_and_row_and_leaves_old_output_alone(damage, siim_copy, tmp_path,
                                                                                   prepare_config):
    out = tmp_path / "h5"
    out.mkdir()
    old = {name: f"earlier {name}".encode() for name in
           ("train.h5", "val.h5", "test.h5", "splits.json", "bad_samples.csv")}
    for name, content in old.items():
        (out / name).write_bytes(content)
    _, culprit, reason = damage(siim_copy)
    with pytest.raises(InputError, match=re.escape(str(culprit)) + r"(, |: ).*" + reason):
        prepare_dataset("siim", siim_copy, out, prepare_config())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


@pytest.mark.parametrize("damage", DAMAGE)
def test_bad_sample_is_left_out_and_listed_under_skip(damage, siim_copy, tmp_path, prepare_config, siim_spec):
    bad_id, culprit, reason = damage(siim_copy)
    prepare_dataset("siim", siim_copy, tmp_path, prepare_config(on_bad_sample="skip"))
    with (tmp_path / "bad_samples.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and (rows[0]["file"], rows[0]["id"]) == (str(culprit), bad_id)
    assert re.search(reason, rows[0]["reason"]) and str(culprit) in rows[0]["reason"]
    splits = json.loads((tmp_path / "splits.json").read_text())
    cached = []
    for split in SPLITS:
        cache = SplitCache(tmp_path / f"{split}.h5")
        cached += list(cache.ids)
        assert list(cache.ids) == splits[split] and len(cache.array("masks")) == len(cache)
        cache.close()
    assert bad_id not in cached and len(cached) == siim_spec.images - 1


def test_a_dicom_failing_in_a_worker_is_skipped_and_the_rest_written_once(siim_copy, tmp_path, prepare_config,
                                                                          siim_spec):
    bad_id, culprit, _ = truncated_dicom(siim_copy)
    out = tmp_path / "h5"
    prepare_dataset("siim", siim_copy, out, prepare_config(on_bad_sample="skip", workers=2))
    assert f"{culprit},{bad_id}," in (out / "bad_samples.csv").read_text()
    with h5py.File(out / "train.h5") as train, h5py.File(out / "val.h5") as val, h5py.File(out / "test.h5") as test:
        assert sum(len(f["ids"]) for f in (train, val, test)) == siim_spec.images - 1
    assert sorted(p.name for p in out.iterdir()) == [
        "bad_samples.csv", "splits.json", "test.h5", "train.h5", "val.h5"]  # no temporary file left

"""`prepare`: raw ChestX-ray14 -> train/val/test caches, or an error naming the file, old caches kept."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
from PIL import Image

from dira.cli import main
from dira.data.cache import SplitCache
from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.prepare import prepare_dataset
from dira.data.sources.chestxray14 import read_chestxray14
from dira.errors import InputError

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def caches(cxr14_caches):
    opened = {split: SplitCache(cxr14_caches / f"{split}.h5") for split in SPLITS}
    yield opened
    for cache in opened.values():
        cache.close()


def test_caches_hold_every_listed_image_once_with_its_labels(caches, cxr14_root, cxr14_spec):
    index = read_chestxray14(cxr14_root)
    ids = {split: list(caches[split].ids) for split in SPLITS}
    assert sorted(ids["train"] + ids["val"]) == sorted(index.train_val)
    assert ids["test"] == index.test
    for split, cache in caches.items():
        n, size = len(cache), cxr14_spec.cache_size
        assert cache.images().shape == (n, size, size) and cache.images().dtype == np.uint8
        assert cache.label_names == list(CHESTXRAY14_LABELS)
        labels, patients = cache.array("labels"), cache.array("patients")
        assert labels.shape == (n, 14) and labels.dtype == np.uint8 and patients.dtype == np.int64
        for row, image_id in enumerate(ids[split]):
            assert np.array_equal(labels[row], index.records[image_id].labels)
            assert patients[row] == int(image_id[:8])
        assert np.all(cache.array("original_size") == cxr14_spec.png_size)
        assert cache.images().reshape(n, -1).std(axis=1).min() > 10  # real pictures, not blank slots


def test_validation_holds_out_a_tenth_of_the_patients(caches):
    train, val = set(caches["train"].array("patients")), set(caches["val"].array("patients"))
    assert not train & val
    assert abs(len(val) / len(train | val) - 0.1) < 0.05


def test_test_boxes_lie_within_their_images_and_match_the_labels(caches, cxr14_root):
    test = caches["test"]
    boxes, rows, columns = test.array("boxes"), test.array("box_index"), test.array("box_labels")
    listed = (cxr14_root / "BBox_List_2017.csv").read_text().splitlines()[1:]
    assert boxes.dtype == np.float32 and boxes.shape == (len(listed), 4) and len(listed) > 0
    sizes = test.array("original_size")[rows]
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, :2] + boxes[:, 2:] <= sizes)
    assert np.all(test.array("labels")[rows, columns] == 1)
    first = listed[0].split(",")
    row = list(test.ids).index(first[0])
    assert row in rows and np.allclose(boxes[rows == row][0], [float(v) for v in first[2:]])
    for split in ("train", "val"):
        assert not caches[split].has("boxes")


def test_test_cache_has_empty_box_arrays_when_the_list_is_empty(cxr14_copy, tmp_path, prepare_config):
    (cxr14_copy / "BBox_List_2017.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    prepare_dataset("chestxray14", cxr14_copy, tmp_path, prepare_config())
    with h5py.File(tmp_path / "test.h5") as f:
        assert (f["boxes"].shape, f["boxes"].dtype) == ((0, 4), np.float32)
        assert (f["box_index"].shape, f["box_index"].dtype) == ((0,), np.int64)
        assert (f["box_labels"].shape, f["box_labels"].dtype) == ((0,), np.int64)


def test_images_are_the_pngs_resized(caches, cxr14_root, cxr14_spec):
    cache, size = caches["train"], cxr14_spec.cache_size
    for row in (0, len(cache) - 1):
        with Image.open(cxr14_root / "images" / cache.ids[row]) as png:
            expected = np.asarray(png.convert("L").resize((size, size), Image.Resampling.BILINEAR))
        assert np.array_equal(cache.image(row), expected)


def test_attributes_record_source_manifest_and_provenance(caches, cxr14_root, cxr14_spec):
    for split, cache in caches.items():
        attrs = cache.attrs
        assert (attrs["dataset"], attrs["split"], attrs["cache_size"]) == ("chestxray14", split,
                                                                           cxr14_spec.cache_size)
        assert attrs["source"] == "synthetic"
        manifest = attrs["manifest"]
        for name in ("Data_Entry_2017_v2020.csv", "BBox_List_2017.csv", "train_val_list.txt",
                     "test_list.txt"):
            digest = hashlib.sha256((cxr14_root / name).read_bytes()).hexdigest()
            assert manifest["files"][name]["sha256"] == digest
        assert manifest["images"] == {s: len(c) for s, c in caches.items()}
        assert manifest["synthetic"]["seed"] == cxr14_spec.seed
        config = attrs["provenance"]["config"]
        assert config["datasets"]["chestxray14"]["cache_size"] == cxr14_spec.cache_size
        assert config["datasets"]["chestxray14"]["source"] == "real"  # the schema default, recorded as run


def test_rgba_png_is_flattened_to_grey(tmp_path, cxr14_root, prepare_config):
    rgba = next(p for p in sorted((cxr14_root / "images").iterdir()) if Image.open(p).mode == "RGBA")
    prepare_dataset("chestxray14", cxr14_root, tmp_path, prepare_config(cache_size=96))
    for split in SPLITS:
        with h5py.File(tmp_path / f"{split}.h5") as f:
            ids = list(f["ids"].asstr()[()])
            if rgba.name in ids:
                with Image.open(rgba) as png:
                    grey = np.asarray(png.getchannel("R"))
                assert np.array_equal(f["images"][ids.index(rgba.name)], grey)  # 96 -> 96: no resampling
                return
    pytest.fail(f"{rgba.name} not in any cache")


def test_each_dataset_is_cached_at_its_own_cache_size(tmp_path, cxr14_root):
    config = {"prepare": {"workers": 1},
              "datasets": {"chestxray14": {"cache_size": 40}, "chexpert": {"cache_size": 56}}}
    prepare_dataset("chestxray14", cxr14_root, tmp_path, config)
    for split in SPLITS:
        with h5py.File(tmp_path / f"{split}.h5") as f:
            assert f["images"].shape[1:] == (40, 40) and f["images"].chunks == (1, 40, 40)
            assert f.attrs["cache_size"] == 40


def test_parallel_workers_write_the_same_images(tmp_path, cxr14_caches, cxr14_root, prepare_config):
    prepare_dataset("chestxray14", cxr14_root, tmp_path, prepare_config(workers=2))
    for split in SPLITS:
        with h5py.File(tmp_path / f"{split}.h5") as new, h5py.File(cxr14_caches / f"{split}.h5") as old:
            assert np.array_equal(new["images"][()], old["images"][()])
            assert np.array_equal(new["ids"][()], old["ids"][()])


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert main(["synth", "chestxray14", "--out", str(tmp_path / "raw"), "--patients", "10",
                 "--image-size", "64", "--seed", "2"]) == 0
    assert main(["prepare", "chestxray14", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "h5"),
                 "--config", '{"prepare": {"workers": 1}, "datasets": {"chestxray14": {"cache_size": 32}}}']) == 0
    assert "chestxray14 (synthetic): train" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "h5").iterdir()) == ["test.h5", "train.h5", "val.h5"]


# ---- failures -------------------------------------------------------------------------------------------

def corrupt_png(root):
    victim = root / "images" / (root / "test_list.txt").read_text().split()[-1]
    data = victim.read_bytes()
    victim.write_bytes(data[:60] + bytes(b ^ 0x5A for b in data[60:]))
    return victim


def drop_csv(root):
    (root / "Data_Entry_2017_v2020.csv").unlink()
    return root / "Data_Entry_2017_v2020.csv"


def wrong_header(root):
    path = root / "Data_Entry_2017_v2020.csv"
    path.write_text(path.read_text().replace("Follow-up #", "Follow-up", 1))
    return path


def delete_listed_image(root):
    victim = root / "images" / (root / "train_val_list.txt").read_text().split()[0]
    victim.unlink()
    return victim


@pytest.mark.parametrize("damage", [corrupt_png, drop_csv, wrong_header, delete_listed_image])
def test_bad_input_names_the_file_and_leaves_old_caches_alone(damage, cxr14_copy, tmp_path, prepare_config):
    out = tmp_path / "h5"
    out.mkdir()
    old = {split: f"an earlier {split} cache".encode() for split in SPLITS}
    for split, content in old.items():
        (out / f"{split}.h5").write_bytes(content)
    culprit = damage(cxr14_copy)
    with pytest.raises(InputError, match=str(culprit).replace(".", r"\.")):
        prepare_dataset("chestxray14", cxr14_copy, out, prepare_config())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {f"{s}.h5": c for s, c in old.items()}


def test_corrupt_png_fails_the_same_way_in_a_worker(cxr14_copy, tmp_path, prepare_config):
    culprit = corrupt_png(cxr14_copy)
    with pytest.raises(InputError, match=rf"{culprit.name}: unreadable image"):
        prepare_dataset("chestxray14", cxr14_copy, tmp_path, prepare_config(workers=2))
    assert list(tmp_path.glob("*.h5*")) == []


def test_unknown_dataset_is_rejected(tmp_path, prepare_config):
    with pytest.raises(InputError, match="unknown dataset 'imagenet'"):
        prepare_dataset("imagenet", tmp_path, tmp_path, prepare_config())

"""`prepare montgomery`: seeded split, united lung masks, 16-bit frames stretched to 8 bits, bad samples."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from dira.cli import main
from dira.data.cache import SplitCache
from dira.data.prepare import prepare_dataset
from dira.data.sources.montgomery import read_lung_mask, read_montgomery, read_radiograph
from dira.errors import InputError

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def caches(montgomery_caches):
    opened = {split: SplitCache(montgomery_caches / f"{split}.h5") for split in SPLITS}
    yield opened
    for cache in opened.values():
        cache.close()


def nearest(array: np.ndarray, size: int) -> np.ndarray:
    """Nearest neighbour written out: the source pixel under each output pixel's centre."""
    rows = ((np.arange(size) + 0.5) * array.shape[0] / size).astype(int)
    cols = ((np.arange(size) + 0.5) * array.shape[1] / size).astype(int)
    return array[np.ix_(rows, cols)]


def test_split_is_recorded_and_covers_every_image_once(caches, montgomery_caches, montgomery_root, montgomery_spec):
    splits = json.loads((montgomery_caches / "splits.json").read_text())
    assert (splits["dataset"], splits["seed"], splits["test_fraction"]) == ("montgomery", 0, 0.2)
    ids = {split: list(caches[split].ids) for split in SPLITS}
    assert ids == {split: splits[split] for split in SPLITS}
    assert sorted(i for split in SPLITS for i in ids[split]) == sorted(read_montgomery(montgomery_root).listed)
    assert len(ids["test"]) == round(0.2 * montgomery_spec.images) and len(ids["val"]) >= 1


def test_images_are_stretched_to_8_bits_and_masks_united_both_resized_by_nearest(caches, montgomery_root,
                                                                               montgomery_spec):
    index, size = read_montgomery(montgomery_root), montgomery_spec.cache_size
    frames = set()
    for cache in caches.values():
        images, masks = cache.images(), cache.array("masks")
        assert masks.dtype == np.uint8 and masks.shape == images.shape and set(np.unique(masks)) <= {0, 1}
        for row, image_id in enumerate(cache.ids):
            record = index.images[image_id]
            pixels = read_radiograph(record.image).astype(float)
            stretched = ((pixels - pixels.min()) * 255 / (pixels.max() - pixels.min()) + 0.5).astype(np.uint8)
            assert np.array_equal(images[row], nearest(stretched, size))
            assert np.array_equal(masks[row], nearest(read_lung_mask(record), size))
            assert tuple(cache.array("original_size")[row]) == record.size
            assert cache.array("labels")[row, 0] == record.tuberculosis
            assert cache.array("patients")[row] == record.number
            frames.add(record.size[0] > record.size[1])
    assert frames == {True, False}  # landscape and portrait frames both squashed to the square
    assert caches["train"].label_names == ["Tuberculosis"]
    assert caches["train"].attrs["grey_levels"] == "per-image min-max to 8 bits"


def test_cached_lungs_are_darker_than_their_surroundings(caches):
    from scipy.ndimage import binary_dilation

    for cache in caches.values():
        for image, lungs in zip(cache.images(), cache.array("masks").astype(bool), strict=True):
            ring = binary_dilation(lungs, iterations=2) & ~lungs
            assert image[lungs].mean() < image[ring].mean() - 15


# ---- bad samples ----------------------------------------------------------------------------------------------

def _first(root):
    return read_montgomery(root).images[sorted(read_montgomery(root).images)[0]]


def mask_of_another_size(root):
    record = _first(root)
    width, height = record.size
    Image.fromarray(np.zeros((height + 3, width), np.uint8)).save(record.right_mask)
    reason = rf"mask is {width}x{height + 3} but its image {re.escape(str(record.image))} is {width}x{height}"
    return record.image_id, record.right_mask, reason


def missing_mask(root):
    record = _first(root)
    record.left_mask.unlink()
    return record.image_id, record.left_mask, f"lung mask of {record.image.name} not found"


def truncated_png(root):  # the header reads, the pixels do not: found only while decoding
    record = _first(root)
    record.image.write_bytes(record.image.read_bytes()[:-300])
    return record.image_id, record.image, "unreadable image"


DAMAGE = [mask_of_another_size, missing_mask, truncated_png]


@pytest.mark.parametrize("damage", DAMAGE)
def test_bad_sample_stops_prepare_naming_the_files_and_keeps_old_output(damage, montgomery_copy, tmp_path,
                                                                        prepare_config):
    out = tmp_path / "h5"
    out.mkdir()
    old = {name: f"earlier {name}".encode() for name in ("train.h5", "val.h5", "test.h5", "splits.json")}
    for name, content in old.items():
        (out / name).write_bytes(content)
    _, culprit, reason = damage(montgomery_copy)
    with pytest.raises(InputError, match=re.escape(str(culprit)) + ": " + reason):
        prepare_dataset("montgomery", montgomery_copy, out, prepare_config())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


@pytest.mark.parametrize("damage", DAMAGE)
def test_bad_sample_is_left_out_and_listed_under_skip(damage, montgomery_copy, tmp_path, prepare_config,
                                                      montgomery_spec):
    bad_id, culprit, reason = damage(montgomery_copy)
    out = tmp_path / "h5"
    prepare_dataset("montgomery", montgomery_copy, out, prepare_config(on_bad_sample="skip"))
    with (out / "bad_samples.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["id"]) for r in rows] == [(str(culprit), bad_id)] and re.search(reason, rows[0]["reason"])
    cached = []
    for split in SPLITS:
        cache = SplitCache(out / f"{split}.h5")
        cached += list(cache.ids)
        cache.close()
    assert bad_id not in cached and len(cached) == montgomery_spec.images - 1
    recorded = json.loads((out / "splits.json").read_text())
    assert bad_id not in {i for split in SPLITS for i in recorded[split]}


def test_cli_synth_then_prepare_from_the_folder_holding_montgomeryset(tmp_path, capsys):
    assert main(["synth", "montgomery", "--out", str(tmp_path / "raw"), "--count", "8", "--image-size", "64"]) == 0
    assert (tmp_path / "raw" / "MontgomerySet" / "CXR_png").is_dir()
    assert main(["prepare", "montgomery", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "h5"),
                 "--config", '{"prepare": {"workers": 1}, "datasets": {"montgomery": {"cache_size": 32}}}']) == 0
    assert "montgomery (synthetic): train" in capsys.readouterr().out
    assert main(["prepare", "montgomery", "--root", str(tmp_path), "--out", str(tmp_path / "h5")]) == 2
    assert "CXR_png: Montgomery image folder not found" in capsys.readouterr().err

"""`discover` on planted groups: every class's neighbours are its reference's group, cut at one coordinate, all kept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from discovery_data import GROUPS, TRAIN_PER_GROUP, VAL_PER_GROUP, read_json, settings

from dira.data.cache import SplitCache
from dira.discovery.stage import discover
from dira.io import load_torch
from dira.models.unet3d import UNet3D, load_released


@pytest.fixture(scope="module")
def run(planted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("words")
    discover(planted["root"], planted["splits"], out, settings())
    return out


def assert_groups_recovered(planted: dict, summary: dict) -> None:
    assert len(summary["classes"]) == GROUPS
    for word in summary["classes"]:
        group = planted["group"][word["reference"]]
        assert word["train"][0] == word["reference"] and word["train_distances"][0] == 0
        assert {planted["group"][uid] for uid in word["train"]} == {group}, word
        assert {planted["group"][uid] for uid in word["val"]} == {group}, word
        assert word["train_distances"] == sorted(word["train_distances"])
    assert len({w["reference"] for w in summary["classes"]}) == GROUPS  # a reference is used once


def test_each_class_gathers_its_references_group(planted, run):
    assert_groups_recovered(planted, read_json(run / "discovery.json"))


def test_every_sample_is_kept(planted, run):
    """TransVW's slicing drops the last sample of each block of classes; here every (class, patient, scale) is a row."""
    summary = read_json(run / "discovery.json")
    train, val = SplitCache(run / "train.h5"), SplitCache(run / "val.h5")
    assert len(train) == GROUPS * TRAIN_PER_GROUP * 3 and len(val) == GROUPS * VAL_PER_GROUP
    assert summary["rows"] == {"train": len(train), "val": len(val)}
    expected_train = {f"vw{w['label']:03d}/{uid}/r{r}" for w in summary["classes"] for uid in w["train"]
                      for r in range(3)}
    expected_val = {f"vw{w['label']:03d}/{uid}/r0" for w in summary["classes"] for uid in w["val"]}
    assert set(train.ids) == expected_train and len(set(train.ids)) == len(train)
    assert set(val.ids) == expected_val
    labels = train.array("labels")
    assert labels.dtype == np.int64 and Counter(labels.tolist()) == dict.fromkeys(range(GROUPS), TRAIN_PER_GROUP * 3)
    assert train.array("resolution").dtype == np.uint8
    assert Counter(train.array("resolution").tolist()) == dict.fromkeys(range(3), GROUPS * TRAIN_PER_GROUP)
    assert set(val.array("resolution").tolist()) == {0}
    for cache in (train, val):  # the row's id, label and resolution agree
        for row_id, label, res in zip(cache.ids, cache.array("labels"), cache.array("resolution"), strict=True):
            assert row_id.startswith(f"vw{label:03d}/") and row_id.endswith(f"/r{res}")


def test_patches_are_windowed_like_the_cubes(run):
    for split in ("train", "val"):
        cache = SplitCache(run / f"{split}.h5")
        images = cache.images()
        assert cache.dtype == np.float16 and cache.shape == (8, 16, 16)
        assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.5
        grid = cache.grid
        assert grid.axes == "zyx" and grid.spacing_field == "spacing_zyx"
        assert grid.intensity == {"unit": "HU", "window": [-1000, 1000], "scaled_to": [0, 1], "stored_as": "float16"}
        assert cache.attrs["split"] == split and cache.attrs["classes"] == GROUPS
        assert {"manifest", "provenance", "dataset", "source"} <= set(cache.attrs)


def test_every_neighbour_is_cut_at_the_class_coordinate(planted, run):
    """'relative': the crop centre sits at the reference's fraction of each axis in every patient (to the grid)."""
    summary = read_json(run / "discovery.json")
    for cache in (SplitCache(run / "train.h5"), SplitCache(run / "val.h5")):
        native = cache.array("resolution") == 0
        for row_id, label, centre, extent in zip(cache.ids[native], cache.array("labels")[native],
                                                 cache.array("centres_zyx")[native],
                                                 cache.array("extent_zyx")[native], strict=True):
            uid = row_id.split("/")[1]
            wanted = np.asarray(summary["classes"][label]["centre_relative_zyx"]) * (
                np.asarray(planted["shape"][uid]) - 1)
            assert np.abs(centre - wanted).max() <= 0.5 + 1e-4, (row_id, centre, wanted)
            assert extent.tolist() == [8, 16, 16]


def test_rescaled_crops_follow_the_scale_and_shift(run):
    cache = SplitCache(run / "train.h5")
    resolution, extent = cache.array("resolution"), cache.array("extent_zyx")
    centres, spacing = cache.array("centres_zyx"), cache.array("spacing_zyx")
    rescaled = resolution > 0
    sides = extent[rescaled, 2]
    assert sides.min() >= 13 and sides.max() < 20  # [0.78125, 1.25) x 16 voxels
    assert (extent[rescaled, 1] == sides).all() and (np.abs(extent[rescaled, 0] - sides / 2) <= 0.5).all()
    native = np.flatnonzero(resolution == 0)
    for r in (1, 2):  # rows of an instance follow each other: r0, r1, r2
        shift = centres[native + r] - centres[native]
        assert np.abs(shift[:, 1:]).max() <= 2.5 + 1e-4  # +- 0.15625 x 16 voxels, plus the grid's half voxel
        assert np.allclose(spacing[native + r], spacing[native] * extent[native + r] / extent[native])


def test_same_settings_same_words(planted, run, tmp_path):
    discover(planted["root"], planted["splits"], tmp_path, settings())
    first, second = SplitCache(run / "train.h5"), SplitCache(tmp_path / "train.h5")
    assert list(first.ids) == list(second.ids)
    assert np.array_equal(first.images(), second.images())
    assert read_json(run / "discovery.json")["classes"] == read_json(tmp_path / "discovery.json")["classes"]
    a, b = load_torch(run / "autoencoder.pt"), load_torch(tmp_path / "autoencoder.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_another_seed_other_words(planted, run, tmp_path):
    discover(planted["root"], planted["splits"], tmp_path, settings(seed=1, multi_resolution=False))
    assert len(SplitCache(tmp_path / "train.h5")) == GROUPS * TRAIN_PER_GROUP  # native crops only
    before = [w["centre_zyx"] for w in read_json(run / "discovery.json")["classes"]]
    after = read_json(tmp_path / "discovery.json")
    assert before != [w["centre_zyx"] for w in after["classes"]]
    assert_groups_recovered(planted, after)  # another initialisation finds the same groups


def test_autoencoder_weights_load_into_the_unet(run):
    model = UNet3D(1, 1, base_width=4, batch_stats_in_eval=True)
    assert load_released(model, run / "autoencoder.pt", skip_heads=False).dropped == []
    summary = read_json(run / "discovery.json")
    assert summary["autoencoder"]["feature_channels"] == 64  # 16 x base_width
    assert len(summary["autoencoder"]["epoch_losses"]) == 3
    assert summary["provenance"]["config"]["discovery"]["classes"] == GROUPS

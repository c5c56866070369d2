"""The per-image recipe: views cut from the cache at its own size, resized to the input size, pure functions of
the seed; and the stored rows the loader hands to the batched views."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from toy import write_toy_caches

from dira.config import load_config
from dira.data.cache import SplitCache
from dira.data.distortions import DistortionProbabilities
from dira.data.samples import StoredRows
from dira.data.view_recipe import ViewParams, ViewRecipe, draw_view_params
from dira.data.views import Restoration, make_views, photometric
from dira.errors import InputError

NO_DISTORTION = DistortionProbabilities(cutout=0.0, outpaint=0.0, shuffle=0.0)
NEVER, ALWAYS = (0.0, 0.0), (1.0, 1.0)


@pytest.fixture(scope="module")
def pretrain():
    return load_config([])["pretrain"]


@pytest.fixture(scope="module")
def mocov2(pretrain):
    return ViewRecipe.from_config(pretrain["mocov2"]["views"])


@pytest.fixture(scope="module")
def restoration(pretrain):
    return Restoration.from_config(pretrain)


def _plain(recipe, **changes):
    """The recipe without any photometric change, so a view is its crop (flipped or not)."""
    return dataclasses.replace(recipe, **{"jitter_prob": NEVER, "blur_prob": NEVER, "solarize_prob": NEVER, **changes})


def _image(size=64):
    yy, xx = np.mgrid[:size, :size]
    return ((xx * 3 + yy) % 256).astype(np.uint8)  # asymmetric, so flips are visible


def test_views_are_a_pure_function_of_the_seed(mocov2, restoration):
    a, b, c = (make_views(_image(), np.random.default_rng(s), mocov2, restoration, 32) for s in (7, 7, 8))
    assert set(a) == {"view1", "view2", "target"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["view1"], c["view1"])


def test_without_restoration_there_is_no_target(mocov2):
    views = make_views(_image(), np.random.default_rng(0), mocov2, None, 48)
    assert set(views) == {"view1", "view2"}
    assert views["view1"].shape == (1, 48, 48) and views["view1"].dtype == torch.float32
    assert views["view1"].min() >= 0.0 and views["view1"].max() <= 1.0


def test_a_view_of_a_large_cache_is_its_source_crop_resized_to_the_input_size(mocov2):
    image, recipe = _image(256), _plain(mocov2, flip_prob=NEVER)
    for seed in range(5):
        view = make_views(image, np.random.default_rng(seed), recipe, None, 64)["view1"]
        top, left, h, w = draw_view_params(np.random.default_rng(seed), recipe, 0, 256, 256).crop
        assert 0.2 * 256**2 * 0.95 <= h * w <= 256**2  # a crop of the 256-px source, not of a 64-px copy
        region = torch.from_numpy(image[top:top + h, left:left + w]).float()[None, None] / 255
        expected = F.interpolate(region, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        assert view.shape == (1, 64, 64)
        torch.testing.assert_close(view, expected[0].clamp(0, 1), atol=1e-6, rtol=0)


def test_bicubic_recipes_resample_differently(mocov2):
    bilinear = make_views(_image(256), np.random.default_rng(1), _plain(mocov2), None, 64)
    bicubic = make_views(_image(256), np.random.default_rng(1), _plain(mocov2, interpolation="bicubic"), None, 64)
    assert not torch.equal(bilinear["view1"], bicubic["view1"])
    assert torch.allclose(bilinear["view1"], bicubic["view1"], atol=0.1)


def test_target_is_the_crop_before_photometric_changes_and_follows_the_flip(mocov2):
    flipped = _plain(mocov2, flip_prob=ALWAYS)
    follow, stay = Restoration(NO_DISTORTION, True), Restoration(NO_DISTORTION, False)
    views = make_views(_image(128), np.random.default_rng(3), flipped, follow, 64)
    assert torch.equal(views["view1"], views["target"])
    # The reference's behaviour (target not flipped) is available and differs.
    views = make_views(_image(128), np.random.default_rng(3), flipped, stay, 64)
    assert torch.equal(views["view1"], views["target"].flip(-1))


def test_jitter_changes_the_view_but_not_the_target(mocov2):
    jitter = _plain(mocov2, jitter_prob=ALWAYS, flip_prob=NEVER)
    views = make_views(_image(128), np.random.default_rng(5), jitter, Restoration(NO_DISTORTION, True), 64)
    assert views["target"].shape == (1, 64, 64)
    assert not torch.allclose(views["view1"], views["target"])


def test_solarisation_inverts_the_bright_half():
    view = torch.linspace(0, 1, 256).reshape(1, 16, 16)
    out = photometric(view, ViewParams((0, 0, 16, 16), False, (), None, True))
    bright = view >= 128 / 255
    assert torch.equal(out[bright], 1 - view[bright]) and torch.equal(out[~bright], view[~bright])


@pytest.mark.parametrize("size", [112, 224])
def test_blur_sigma_is_relative_to_the_output_size(size):
    impulse = torch.zeros(1, size, size)
    impulse[0, size // 2, size // 2] = 1.0
    out = photometric(impulse, ViewParams((0, 0, size, size), False, (), 2.0, False))[0, size // 2]
    x = torch.arange(size, dtype=torch.float64) - size // 2
    spread = torch.sqrt((out.double() * x**2).sum() / out.double().sum())
    # σ = 2 px at 224 px, 1 px at 112 px (the 3σ truncation trims the spread a little).
    assert spread.item() == pytest.approx(2.0 * size / 224, rel=0.05)


def test_distortion_blocks_are_sized_for_the_output_not_the_cache(mocov2):
    cutout_only = Restoration(DistortionProbabilities(cutout=1.0, outpaint=0.0, shuffle=0.0), True)
    image = np.full((224, 224), 200, dtype=np.uint8)  # no zeros but those of the cut-out
    zeroed = [(make_views(image, np.random.default_rng(s), _plain(mocov2), cutout_only, 56)["view1"] == 0).sum()
              for s in range(20)]
    assert min(zeroed) > 0 and max(zeroed) <= 10 * 18 * 18  # 70 px at 224 are 18 px of a 56-px view


def test_stored_rows_are_the_cached_uint8_images_with_their_positions(tmp_path):
    caches = write_toy_caches(tmp_path, {"train": 6}, image_size=96)
    cache = SplitCache(caches / "train.h5")
    rows = StoredRows(cache, max_rows=4)
    assert len(rows) == 4
    row = rows[3]
    assert row["image"].dtype == torch.uint8 and row["image"].shape == (96, 96)
    assert torch.equal(row["image"], torch.from_numpy(cache.image(3))) and int(row["index"]) == 3
    with pytest.raises(InputError, match="labels"):
        StoredRows(cache, labels=True)

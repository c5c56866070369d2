"""Each base method's view recipe, as the schema's defaults give it, draws what the original recipe states."""

import math

import numpy as np
import pytest

from dira.config import load_config
from dira.data.view_recipe import ViewRecipe, draw_view_params

DRAWS = 4000
SOURCE = 256  # side of the cached image the crops are cut from


@pytest.fixture(scope="module")
def recipes():
    pretrain = load_config([])["pretrain"]
    return {m: ViewRecipe.from_config(pretrain[m]["views"]) for m in ("mocov2", "simsiam", "barlowtwins")}


def _draws(recipe, view_index, seed=0):
    rng = np.random.default_rng(seed)
    return [draw_view_params(rng, recipe, view_index, SOURCE, SOURCE) for _ in range(DRAWS)]


def _share(params, what):
    return sum(bool(getattr(p, what)) for p in params) / len(params)


def _close_to(share, p):
    """Within 4 standard deviations of a binomial share over DRAWS draws."""
    return abs(share - p) <= 4 * math.sqrt(p * (1 - p) / DRAWS) + 1e-12


def test_barlow_twins_blurs_view_1_always_and_solarises_only_view_2(recipes):
    view1, view2 = _draws(recipes["barlowtwins"], 0), _draws(recipes["barlowtwins"], 1)
    assert _share(view1, "blur_sigma") == 1.0 and _share(view1, "solarize") == 0.0
    assert _close_to(_share(view2, "blur_sigma"), 0.1)
    assert _close_to(_share(view2, "solarize"), 0.2)
    assert all(_close_to(_share(v, "flip"), 0.5) and _close_to(_share(v, "jitter"), 0.8) for v in (view1, view2))


@pytest.mark.parametrize("method", ["mocov2", "simsiam"])
def test_mocov2_and_simsiam_views_are_symmetric_and_never_solarised(recipes, method):
    for view_index in (0, 1):
        params = _draws(recipes[method], view_index)
        assert _share(params, "solarize") == 0.0
        assert _close_to(_share(params, "blur_sigma"), 0.5)
        assert _close_to(_share(params, "jitter"), 0.8)
        assert _close_to(_share(params, "flip"), 0.5)


def test_on_grey_images_simsiams_aug_plus_is_dira_mocov2_recipe(recipes):
    # SimSiam's only addition, RandomGrayscale(0.2), does nothing to a one-channel image; the config keeps it.
    assert load_config([])["pretrain"]["simsiam"]["views"]["grayscale_prob"] == [0.2, 0.2]
    assert recipes["simsiam"] == recipes["mocov2"]
    assert recipes["barlowtwins"].interpolation == "bicubic" and recipes["mocov2"].interpolation == "bilinear"


@pytest.mark.parametrize("method", ["mocov2", "simsiam", "barlowtwins"])
def test_crop_area_shares_lie_in_the_recipes_scale_range(recipes, method):
    low, high = recipes[method].crop_scale
    shares = []
    for p in _draws(recipes[method], 0):
        top, left, h, w = p.crop
        assert top >= 0 and left >= 0 and top + h <= SOURCE and left + w <= SOURCE
        shares.append(h * w / SOURCE**2)
    # Rounding the sides to whole pixels moves the area by less than a side's length.
    assert low - 2 * math.sqrt(low) / SOURCE <= min(shares) < low + 0.02
    assert max(shares) <= high


def test_jitter_and_blur_values_stay_in_their_ranges_and_the_jitter_order_varies(recipes):
    recipe = recipes["barlowtwins"]
    params = _draws(recipe, 0)
    orders = {tuple(name for name, _ in p.jitter) for p in params if p.jitter}
    assert orders == {("brightness", "contrast"), ("contrast", "brightness")}
    factors = [f for p in params for _, f in p.jitter]
    assert min(factors) >= 1 - recipe.brightness and max(factors) <= 1 + recipe.brightness
    assert min(factors) < 0.65 and max(factors) > 1.35
    sigmas = [p.blur_sigma for p in params]
    assert recipe.blur_sigma[0] <= min(sigmas) and max(sigmas) <= recipe.blur_sigma[1]


def test_drawn_parameters_are_a_pure_function_of_the_generator(recipes):
    a = _draws(recipes["barlowtwins"], 1, seed=3)[:50]
    b = _draws(recipes["barlowtwins"], 1, seed=3)[:50]
    c = _draws(recipes["barlowtwins"], 1, seed=4)[:50]
    assert a == b and a != c

"""Batched device-side views render what the per-image recipe renders, and draw the same distributions.

Two kinds of checks: given one batch's draws, every image's views equal those the per-image functions of
``dira.data.views`` make from the same values; and 10,000 batched draws match 10,000 per-image draws in every
random quantity (Kolmogorov-Smirnov for continuous ones, chi-square for counts), at a level (0.001) that a
correct implementation fails once in a thousand runs, while a slightly wrong recipe is rejected.
"""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from dira.config import load_config
from dira.data import batch_distortions as bd
from dira.data import distortions
from dira.data.batch_views import TwoViewBatch, draw_crops, draw_views
from dira.data.cpu_views import level_table
from dira.data.crop_resample import resample_crops, resize_crop_uint8, resize_uint8
from dira.data.distortions import DistortionProbabilities
from dira.data.view_recipe import ViewParams, ViewRecipe, draw_view_params, sample_crop
from dira.data.views import Restoration, crop_and_resize, photometric

N = 10_000
ALPHA = 1e-3


@pytest.fixture(scope="module")
def pretrain():
    return load_config([])["pretrain"]


@pytest.fixture(scope="module", params=["mocov2", "barlowtwins", "simsiam"])
def recipe(request, pretrain):
    return ViewRecipe.from_config(pretrain[request.param]["views"])


@pytest.fixture(scope="module")
def probabilities(pretrain):
    return DistortionProbabilities(**pretrain["distortion"])


def _images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    base = (xx * 3 + yy * 5) % 256
    return ((base[None] + torch.randint(0, 40, (n, size, size), generator=g)) % 256).to(torch.uint8)


def _params(draws, i):
    """The per-image ViewParams of batch row ``i``."""
    jitter = ()
    b, c = float(draws.brightness[i]), float(draws.contrast[i])
    if b != 1.0 or c != 1.0:
        ops = [("brightness", b), ("contrast", c)]
        jitter = tuple(ops if draws.brightness_first[i] else ops[::-1])
    sigma = float(draws.blur_sigma[i])
    return ViewParams(tuple(int(v) for v in draws.crops[i]), bool(draws.flip[i]), jitter,
                      sigma if sigma > 0 else None, bool(draws.solarize[i]))


def _distort_one(view, draws, i):
    """The documented semantics of one image's distortion, in plain numpy."""
    out, kind = view.copy(), int(draws.kind[i])
    boxes = [tuple(int(v) for v in b) for b, on in zip(draws.boxes[i], draws.active[i], strict=True) if on]
    if kind == bd.CUTOUT:
        for y, x, h, w in boxes:
            out[y:y + h, x:x + w] = 0.0
    elif kind == bd.OUTPAINT:
        out = np.zeros_like(view)
        for y, x, h, w in boxes:
            out[y:y + h, x:x + w] = view[y:y + h, x:x + w]
    elif kind == bd.SHUFFLE:
        for pair, on in zip(draws.pairs[i].tolist(), draws.pair_active[i].tolist(), strict=True):
            if on:
                y1, x1, y2, x2, h, w = pair
                block = out[y1:y1 + h, x1:x1 + w].copy()
                out[y1:y1 + h, x1:x1 + w] = out[y2:y2 + h, x2:x2 + w]
                out[y2:y2 + h, x2:x2 + w] = block
    return out


# ------------------------------------------------------------------ rendering
def _crop_uint8(image, crop, size, interpolation):
    """The reference's resize (PIL's, as torch's one-channel uint8 kernel does it): 8-bit in, 8-bit out."""
    top, left, h, w = crop
    region = image[top:top + h, left:left + w].contiguous()[None, None]
    resized = F.interpolate(region, size=(size, size), mode=interpolation, antialias=True, align_corners=False)
    return resized[0].to(torch.float32) / 255.0


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("source", [48, 160])
def test_both_resampling_paths_are_torchs_antialiased_resize_of_the_crop(interpolation, source):
    images = _images(12, source)
    crops = draw_crops(torch.Generator().manual_seed(1), 12, source, source, (0.08, 1.0))
    per_crop = resample_crops(images, crops, 40, interpolation, dense=False)
    batched = resample_crops(images, crops, 40, interpolation, dense=True)
    for i in range(12):
        crop = tuple(int(v) for v in crops[i])
        expected = crop_and_resize(images[i].numpy(), crop, 40, interpolation)
        torch.testing.assert_close(batched[i], expected, atol=2e-5, rtol=0)  # the float filter
        if interpolation == "bilinear":  # bicubic: see the next test
            torch.testing.assert_close(per_crop[i], _crop_uint8(images[i], crop, 40, interpolation),
                                       atol=1.01 / 255, rtol=0)
        if interpolation == "bilinear":  # no overshoot to clamp between the 8-bit passes: only the rounding
            torch.testing.assert_close(per_crop[i], expected, atol=1.01 / 255, rtol=0)


@pytest.mark.parametrize("shape", [(800, 803), (13, 97), (224, 224), (225, 230)])
def test_the_uint8_resize_is_within_one_level_of_torchs_and_of_the_float_filter(shape):
    sawtooth = _images(1, 1024)[0, 5:5 + shape[0], 3:3 + shape[1]]
    expected = F.interpolate(sawtooth.contiguous()[None, None], size=(224, 224), mode="bilinear", antialias=True)
    ours = resize_uint8(sawtooth, 224, "bilinear")
    assert ours.dtype == torch.uint8 and ours.shape == (224, 224)
    assert (ours.int() - expected[0, 0].int()).abs().max() <= 1  # torch takes the columns first: other roundings
    # As the views call it, on the whole image: (13, 97) and (224, 224) are only enlarged (OpenCV's bilinear).
    in_place = resize_crop_uint8(_images(1, 1024)[0], (5, 3, *shape), 224, "bilinear")
    assert (in_place.int() - expected[0, 0].int()).abs().max() <= 1
    # A cubic overshoots at sharp edges, and the clamp between two 8-bit passes depends on their order (PIL's is
    # torch's, columns first): compared on a smooth image, where nothing is clamped.
    yy, xx = torch.meshgrid(torch.linspace(0, 3, shape[0]), torch.linspace(0, 2, shape[1]), indexing="ij")
    smooth = (127.5 + 100 * torch.sin(yy) * torch.cos(xx)).round().to(torch.uint8)
    for interpolation in ("bilinear", "bicubic"):
        exact = F.interpolate(smooth.float()[None, None], size=(224, 224), mode=interpolation, antialias=True)
        assert (resize_uint8(smooth, 224, interpolation).float() - exact[0, 0]).abs().max() <= 1.5  # 2 roundings


# per_image: dira.data.cpu_views (the CPU's renderer); batched: the tensor ops a GPU runs, here on CPU tensors.
# The 96-px source at 56 px has crops enlarged on both sides (OpenCV's bilinear) and crops shrunk (torch's).
@pytest.mark.parametrize("per_image", [True, False], ids=["per_image", "batched"])
def test_each_view_of_a_batch_is_the_per_image_recipe_applied_to_its_draws(recipe, probabilities, per_image):
    always = dataclasses.replace(recipe, jitter_prob=(0.7, 0.7), blur_prob=(0.6, 0.6), solarize_prob=(0.3, 0.3))
    views = TwoViewBatch(always, Restoration(probabilities, target_follows_flip=True), size=56)
    images = _images(24, 96)
    draws = views.draw(torch.Generator().manual_seed(4), 24, 96, 96, restoring=True)
    out = views.render(images, draws, per_image=per_image)
    for index, (view_draws, distortion) in enumerate(draws):
        for i in range(24):
            params = _params(view_draws, i)
            crop = resample_crops(images[i:i + 1], view_draws.crops[i:i + 1], 56, recipe.interpolation)[0]
            expected = photometric(crop, params)
            expected = expected.flip(-1) if params.flip else expected
            expected = _distort_one(expected[0].numpy(), distortion, i)
            np.testing.assert_allclose(out[f"view{index + 1}"][i, 0].numpy(), np.clip(expected, 0, 1), atol=1e-4)
            if index == 0:
                target = crop.flip(-1) if params.flip else crop
                torch.testing.assert_close(out["target"][i], target, atol=1e-6, rtol=0)
    kinds = set(draws[0][1].kind.tolist()) | set(draws[1][1].kind.tolist())
    assert kinds == {bd.NONE, bd.CUTOUT, bd.OUTPAINT, bd.SHUFFLE}  # every distortion was rendered and checked


@pytest.mark.parametrize("brightness_first", [True, False])
@pytest.mark.parametrize(("brightness", "contrast"), [(1.35, 0.7), (1.35, 1.3), (0.65, 1.3), (1.0, 0.8)])
@pytest.mark.parametrize("solarize", [False, True])
def test_the_level_table_is_torchvisions_jitter_and_solarisation_of_each_level(brightness, contrast,
                                                                              brightness_first, solarize):
    """Including a brightness above 1 that clips the crop's brightest levels before the contrast takes its mean
    (the histogram branch), and one that clips none of a darker crop (the mean-level branch)."""
    for high in (255, 150):
        levels = _images(1, 64)[0].clamp(max=high).numpy()
        table = torch.from_numpy(level_table(levels, brightness, contrast, brightness_first, solarize))
        image = torch.from_numpy(levels).float().div(255.0)[None]
        ops = [("brightness", brightness), ("contrast", contrast)]
        params = ViewParams((0, 0, 64, 64), False, tuple(ops if brightness_first else ops[::-1]), None, solarize)
        expected = photometric(image, params)[0]
        torch.testing.assert_close(table[torch.from_numpy(levels).long()], expected, atol=1e-6, rtol=0)


def test_without_restoration_there_is_no_target_and_no_distortion(recipe, probabilities):
    views = TwoViewBatch(recipe, Restoration(probabilities, True), size=32)
    out = views({"image": _images(4, 64)}, torch.Generator().manual_seed(0), restoring=False)
    assert set(out) == {"view1", "view2"}
    assert out["view1"].shape == (4, 1, 32, 32) and out["view1"].dtype == torch.float32


def test_a_shuffle_keeps_every_pixel_value_and_moves_only_the_paired_blocks(probabilities):
    n, size = 16, 64
    draws = bd.draw_distortions(torch.Generator().manual_seed(2), n, size, DistortionProbabilities(0, 0, 1))
    views = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(3))
    out = bd.apply_distortions(views.clone(), draws)
    for i in range(n):
        assert torch.equal(out[i].flatten().sort().values, views[i].flatten().sort().values)
        np.testing.assert_array_equal(out[i, 0].numpy(), _distort_one(views[i, 0].numpy(), draws, i))
    assert not torch.equal(out, views)


def test_views_depend_only_on_the_generator(recipe, probabilities):
    views = TwoViewBatch(recipe, Restoration(probabilities, True), size=32)
    batch = {"image": _images(6, 80)}
    a, b, c = (views(batch, torch.Generator().manual_seed(s), True) for s in (5, 5, 6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["view1"], c["view1"])


# ------------------------------------------------------------------ distributions
def _per_image_views(recipe, view_index, height, width, n=N):
    rng = np.random.default_rng(123)
    return [draw_view_params(rng, recipe, view_index, height, width) for _ in range(n)]


def _ks(a, b, what):
    result = stats.ks_2samp(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    assert result.pvalue > ALPHA, f"{what}: KS p = {result.pvalue:.2g}"


def _same_frequencies(a, b, what):
    """Chi-square test of homogeneity of two samples of discrete values."""
    values = sorted(set(a) | set(b))
    table = np.array([[list(a).count(v) for v in values], [list(b).count(v) for v in values]])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        assert table.shape[1] == 1, what
        return
    p = stats.chi2_contingency(table).pvalue
    assert p > ALPHA, f"{what}: chi-square p = {p:.2g}"


@pytest.mark.parametrize("view_index", [0, 1])
def test_batched_view_draws_have_the_per_image_distributions(recipe, view_index):
    height, width = 300, 240  # not square, so the centre fallback and both bounds matter
    per_image = _per_image_views(recipe, view_index, height, width)
    batched = draw_views(torch.Generator().manual_seed(7), recipe, view_index, N, height, width)
    crops = batched.crops.numpy()
    ref_crops = np.array([p.crop for p in per_image])
    for name, col in (("area share", lambda c: c[:, 2] * c[:, 3] / (height * width)),
                      ("log aspect", lambda c: np.log(c[:, 3] / c[:, 2])),
                      ("top share", lambda c: c[:, 0] / np.maximum(height - c[:, 2], 1)),
                      ("left share", lambda c: c[:, 1] / np.maximum(width - c[:, 3], 1))):
        _ks(col(crops), col(ref_crops), name)
    _same_frequencies(batched.flip.tolist(), [p.flip for p in per_image], "flip")
    _same_frequencies(batched.solarize.tolist(), [p.solarize for p in per_image], "solarize")
    jittered = (batched.brightness != 1) | (batched.contrast != 1)
    _same_frequencies(jittered.tolist(), [bool(p.jitter) for p in per_image], "jitter applied")
    ref_jitter = [dict(p.jitter) for p in per_image if p.jitter]
    _ks(batched.brightness[jittered], [j["brightness"] for j in ref_jitter], "brightness factor")
    _ks(batched.contrast[jittered], [j["contrast"] for j in ref_jitter], "contrast factor")
    _same_frequencies(batched.brightness_first[jittered].tolist(),
                      [p.jitter[0][0] == "brightness" for p in per_image if p.jitter], "jitter order")
    blurred = batched.blur_sigma > 0
    _same_frequencies(blurred.tolist(), [p.blur_sigma is not None for p in per_image], "blur applied")
    if blurred.any():
        _ks(batched.blur_sigma[blurred], [p.blur_sigma for p in per_image if p.blur_sigma is not None], "blur σ")


def test_the_crop_test_rejects_a_slightly_different_scale(recipe):
    """The tests above have power: a crop scale 0.05 off is found out on 10,000 draws."""
    shifted = dataclasses.replace(recipe, crop_scale=(recipe.crop_scale[0] + 0.05, recipe.crop_scale[1]))
    ref = np.array([sample_crop(np.random.default_rng(i), 224, 224, recipe.crop_scale) for i in range(N)])
    batched = draw_crops(torch.Generator().manual_seed(0), N, 224, 224, shifted.crop_scale).numpy()
    p = stats.ks_2samp(batched[:, 2] * batched[:, 3], ref[:, 2] * ref[:, 3]).pvalue
    assert p < ALPHA


@pytest.mark.parametrize("size", [32, 224])
def test_batched_distortions_have_the_per_image_distributions(probabilities, size):
    draws = bd.draw_distortions(torch.Generator().manual_seed(11), N, size, probabilities)
    rng = np.random.default_rng(5)
    kinds, cut, out, pairs = [], [], [], []
    for _ in range(N):  # the per-image recipe of distortions.distort, kind by kind
        r = rng.random()
        kind = (bd.CUTOUT if r < probabilities.cutout else bd.OUTPAINT if r < probabilities.cutout
                + probabilities.outpaint else bd.SHUFFLE if r < probabilities.cutout + probabilities.outpaint
                + probabilities.shuffle else bd.NONE)
        kinds.append(kind)
    for _ in range(N // 4):
        cut.append(distortions.cutout_boxes(rng, size, size))
        out.append(distortions.outpaint_boxes(rng, size, size))
        pairs.append(distortions.shuffle_pairs(rng, size, size))
    _same_frequencies(draws.kind.tolist(), kinds, "distortion kind")
    m = N // 4
    cut_boxes, cut_active = bd._boxes(torch.Generator().manual_seed(1), m, size, shrink=False)
    out_boxes, out_active = bd._boxes(torch.Generator().manual_seed(2), m, size, shrink=True)
    for name, boxes, active, ref in (("cut-out", cut_boxes, cut_active, cut),
                                     ("out-painting", out_boxes, out_active, out)):
        _same_frequencies(active.sum(1).tolist(), [len(b) for b in ref], f"{name} block count")
        ours = boxes[active].numpy()
        theirs = np.array([box for boxes_ in ref for box in boxes_])
        _same_frequencies(ours[:, 2].tolist(), theirs[:, 2].tolist(), f"{name} block height")
        _ks(ours[:, 2] * ours[:, 3], theirs[:, 2] * theirs[:, 3], f"{name} block area")
        _ks(ours[:, 0], theirs[:, 0], f"{name} block top")
        _ks(ours[:, 1], theirs[:, 1], f"{name} block left")
    pair_draws, pair_active = bd._pairs(torch.Generator().manual_seed(3), m, size)
    _same_frequencies(pair_active.sum(1).tolist(), [len(p) for p in pairs], "shuffled pairs")
    ours = pair_draws[pair_active].numpy()
    theirs = np.array([(*a[:2], *b[:2], a[2], a[3]) for ps in pairs for a, b in ps])
    _same_frequencies(ours[:, 4].tolist(), theirs[:, 4].tolist(), "shuffle block height")
    _ks(np.abs(ours[:, 0] - ours[:, 2]), np.abs(theirs[:, 0] - theirs[:, 2]), "shuffle |dy|")
    _ks(np.abs(ours[:, 1] - ours[:, 3]), np.abs(theirs[:, 1] - theirs[:, 3]), "shuffle |dx|")

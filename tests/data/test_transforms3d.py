"""Models Genesis / TransVW 3D transforms: contracts, exact block semantics and the composers' frequencies."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from dira.data import transforms3d as t3

SHAPE = (32, 64, 64)
SMALL = (12, 20, 20)  # for the many-draw frequency tests; block sides stay >= 1 everywhere

SHUFFLING = {"blocks": 10_000, "block_divisor": 10}
NONLINEARITY = {"reverse_prob": 0.5, "curve_points": 100_000}
INPAINTING = {"max_blocks": 5, "continue_prob": 0.95, "min_side_divisor": 6, "max_side_divisor": 3, "margin": 3}
OUTPAINTING = {"max_windows": 5, "continue_prob": 0.95, "shrink_sevenths": (3, 4), "margin": 3}
ELASTIC = {"alpha": 991.0, "sigma": 8.0, "axes": (1, 2)}
MG = {
    "flip_prob": 0.4, "max_flips": 3, "shuffle_prob": 0.5, "nonlinear_prob": 0.9, "paint_prob": 0.9,
    "inpaint_prob": 0.2, "shuffling": SHUFFLING, "nonlinearity": NONLINEARITY, "inpainting": INPAINTING,
    "outpainting": OUTPAINTING,
}
TRANSVW = {
    "elastic_prob": 1.0, "elastic": ELASTIC, "choice_probs": (0.25, 0.25, 0.25, 0.25), "shuffling": SHUFFLING,
    "nonlinearity": NONLINEARITY, "inpainting": INPAINTING, "outpainting": OUTPAINTING,
}
# cheap settings for the frequency tests: the gates, not the work inside them, are under test
CHEAP = {"shuffling": {"blocks": 20, "block_divisor": 10}, "nonlinearity": {"reverse_prob": 0.5, "curve_points": 256}}


@pytest.fixture(scope="session")
def cube() -> np.ndarray:
    return np.random.default_rng(123).random(SHAPE, dtype=np.float32)


@pytest.fixture(scope="session")
def unique_cube() -> np.ndarray:
    """Every voxel a distinct value, so a value says where it came from."""
    n = int(np.prod(SHAPE))
    return (np.random.default_rng(7).permutation(n).astype(np.float32) / n).reshape(SHAPE)


TRANSFORMS = {
    "flip": lambda c, r: t3.flip(c, r, prob=0.9, max_flips=3),
    "local_shuffle": lambda c, r: t3.local_shuffle(c, r, **SHUFFLING),
    "nonlinear": lambda c, r: t3.nonlinear_intensity(c, r, **NONLINEARITY),
    "inpaint": lambda c, r: t3.inpaint(c, r, **INPAINTING),
    "outpaint": lambda c, r: t3.outpaint(c, r, **OUTPAINTING),
    "elastic": lambda c, r: t3.elastic_deform(c, r, **ELASTIC),
    "mg": lambda c, r: t3.models_genesis_view(c, r, **MG)[0],
    "transvw": lambda c, r: t3.transvw_view(c, r, **TRANSVW)[0],
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_shape_dtype_range_kept_input_untouched_and_seeded(name, cube):
    before = cube.copy()
    out = TRANSFORMS[name](cube, np.random.default_rng(5))
    again = TRANSFORMS[name](cube, np.random.default_rng(5))
    assert out.shape == SHAPE and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(cube, before)
    assert np.array_equal(out, again)


@pytest.mark.parametrize("name", ["local_shuffle", "nonlinear", "inpaint", "outpaint", "elastic"])
def test_a_distortion_changes_the_cube_and_depends_on_the_seed(name, cube):
    a = TRANSFORMS[name](cube, np.random.default_rng(1))
    b = TRANSFORMS[name](cube, np.random.default_rng(2))
    assert not np.array_equal(a, cube) and not np.array_equal(a, b)


def test_composers_are_deterministic_for_a_seed(cube):
    for composer, params in ((t3.models_genesis_view, MG), (t3.transvw_view, TRANSVW)):
        x1, y1, n1 = composer(cube, np.random.default_rng(11), **params)
        x2, y2, n2 = composer(cube, np.random.default_rng(11), **params)
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and n1 == n2


def test_disjoint_blocks_keep_their_multisets_and_the_global_histogram(unique_cube):
    starts = np.array([[0, 0, 0], [3, 0, 0], [10, 20, 30], [20, 50, 1]])
    sizes = np.array([[3, 6, 6], [2, 5, 4], [3, 3, 6], [1, 6, 2]])
    out = t3.shuffle_blocks(unique_cube, np.random.default_rng(0), starts=starts, sizes=sizes)
    inside = np.zeros(SHAPE, bool)
    for (z, y, x), (dz, dy, dx) in zip(starts, sizes, strict=True):
        box = np.s_[z:z + dz, y:y + dy, x:x + dx]
        assert np.array_equal(np.sort(out[box], axis=None), np.sort(unique_cube[box], axis=None))
        assert not np.array_equal(out[box], unique_cube[box])  # actually shuffled (72 distinct values)
        inside[box] = True
    assert np.array_equal(out[~inside], unique_cube[~inside])
    assert np.array_equal(np.sort(out, axis=None), np.sort(unique_cube, axis=None))


def test_overlapping_blocks_read_the_original_and_the_later_block_wins(unique_cube):
    first, second = np.s_[0:3, 0:6, 0:6], np.s_[1:3, 2:6, 2:6]
    out = t3.shuffle_blocks(
        unique_cube, np.random.default_rng(3), starts=[[0, 0, 0], [1, 2, 2]], sizes=[[3, 6, 6], [2, 4, 4]]
    )
    # the later block holds exactly its original values, not values the first block moved into it
    assert np.array_equal(np.sort(out[second], axis=None), np.sort(unique_cube[second], axis=None))
    only_first = np.zeros(SHAPE, bool)
    only_first[first] = True
    only_first[second] = False
    assert np.isin(out[only_first], unique_cube[first]).all()


def test_local_shuffle_moves_values_only_within_a_block_side(unique_cube):
    out = t3.local_shuffle(unique_cube, np.random.default_rng(4), **SHUFFLING)
    order = np.argsort(unique_cube, axis=None)
    source = order[np.searchsorted(unique_cube.ravel()[order], out.ravel())]
    assert np.array_equal(unique_cube.ravel()[source], out.ravel())  # every output value is an input value
    moved = np.abs(np.array(np.unravel_index(source, SHAPE)) - np.indices(SHAPE).reshape(3, -1))
    assert (moved.max(axis=1) < np.array(SHAPE) // 10).all()  # sides are at most dim // 10
    assert (moved.max(axis=1) == np.array(SHAPE) // 10 - 1).all()  # and the largest sides do occur
    assert (out != unique_cube).mean() > 0.5  # 10,000 blocks touch most of the cube


def test_nonlinear_intensity_is_monotone_with_fixed_ends_and_reverses_about_half_the_time():
    ramp = np.linspace(0.0, 1.0, 8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    directions = []
    for seed in range(200):
        out = t3.nonlinear_intensity(ramp, np.random.default_rng(seed), **NONLINEARITY).ravel()
        steps = np.diff(out)
        if out[0] < out[-1]:
            assert (steps >= 0).all() and out[0] == pytest.approx(0, abs=1e-6) and out[-1] == pytest.approx(1)
        else:
            assert (steps <= 0).all() and out[0] == pytest.approx(1) and out[-1] == pytest.approx(0, abs=1e-6)
        directions.append(out[0] > out[-1])
    assert chisquare(np.bincount(directions, minlength=2)).pvalue > 1e-3


def test_inpaint_changes_only_its_blocks():
    flat = np.full(SHAPE, 0.5, np.float32)
    counts = []
    for seed in range(20):
        boxes = t3.inpaint_boxes(SHAPE, np.random.default_rng(seed), **INPAINTING)
        out = t3.inpaint(flat, np.random.default_rng(seed), **INPAINTING)
        painted = np.zeros(SHAPE, bool)
        for box in boxes:
            painted[box] = True
            for s, d in zip(box, SHAPE, strict=True):
                assert d // 6 <= s.stop - s.start <= d // 3 and s.start >= 3 and s.stop <= d - 3
        assert len(boxes) <= 5  # and none at all 5 % of the time, as in the reference
        assert np.array_equal(out[~painted], flat[~painted])
        assert not boxes or (out[painted] != 0.5).mean() > 0.999  # noise everywhere inside
        counts.append(len(boxes))
    assert max(counts) >= 3


def test_outpaint_keeps_only_its_windows():
    flat = np.full(SHAPE, 0.5, np.float32)
    for seed in range(20):
        out = t3.outpaint(flat, np.random.default_rng(seed), **OUTPAINTING)
        replay = np.random.default_rng(seed)
        replay.random(SHAPE, dtype=np.float32)  # outpaint draws its noise before its windows
        boxes = t3.outpaint_boxes(SHAPE, replay, **OUTPAINTING)
        kept = np.zeros(SHAPE, bool)
        for box in boxes:
            kept[box] = True
            for s, d in zip(box, SHAPE, strict=True):
                assert d - 4 * d // 7 <= s.stop - s.start <= d - 3 * d // 7 and s.start >= 3 and s.stop <= d - 3
        assert 1 <= len(boxes) <= 5
        assert np.array_equal(out[kept], flat[kept])
        assert (out[~kept] != 0.5).mean() > 0.999


def test_elastic_with_alpha_zero_is_the_identity(cube):
    for axes in ((1, 2), (0, 1, 2)):
        assert np.array_equal(t3.elastic_deform(cube, np.random.default_rng(0), alpha=0.0, sigma=8.0, axes=axes), cube)


def test_elastic_moves_voxels_by_a_few_voxels_smoothly():
    ramp = np.broadcast_to(np.linspace(0, 1, 64, dtype=np.float32), SHAPE).copy()  # value = x / 63
    out = t3.elastic_deform(ramp, np.random.default_rng(0), **ELASTIC)
    shift = (out - ramp) * 63  # displacement along x, in voxels, away from the reflecting faces
    inner = np.abs(shift[8:-8, 8:-8, 8:-8])
    assert 0.5 < inner.mean() < 10 and inner.max() < 30
    depth_ramp = np.broadcast_to(np.linspace(0, 1, 32, dtype=np.float32)[:, None, None], SHAPE).copy()
    in_plane = t3.elastic_deform(depth_ramp, np.random.default_rng(0), **ELASTIC)
    assert np.allclose(in_plane, depth_ramp, atol=1e-6)  # in-plane fields never move a voxel in depth


def test_models_genesis_flips_the_target_with_the_input_and_never_depth(unique_cube):
    variants = {
        "none": unique_cube, "y": unique_cube[:, ::-1], "x": unique_cube[:, :, ::-1], "yx": unique_cube[:, ::-1, ::-1]
    }
    only_flip = {**MG, "flip_prob": 1.0, "shuffle_prob": 0.0, "nonlinear_prob": 0.0, "paint_prob": 0.0}
    seen = set()
    for seed in range(30):
        x, y, names = t3.models_genesis_view(unique_cube, np.random.default_rng(seed), **only_flip)
        assert names == ("flip",) and np.array_equal(x, y)
        assert np.array_equal(y, t3.flip(unique_cube, np.random.default_rng(seed), prob=1.0, max_flips=3))
        seen |= {k for k, v in variants.items() if np.array_equal(y, v)}
    assert seen == set(variants)
    x, y, names = t3.models_genesis_view(unique_cube, np.random.default_rng(0), **{**MG, "flip_prob": 1.0})
    assert "flip" in names and any(np.array_equal(y, v) for v in variants.values())


def test_flip_rounds_and_picks_follow_the_reference():
    rng = np.random.default_rng(0)
    draws = [t3.draw_flips(rng, prob=0.4, max_flips=3) for _ in range(4000)]
    rounds = np.bincount([len(d) for d in draws], minlength=4)
    expected = np.array([0.6, 0.4 * 0.6, 0.4**2 * 0.6, 0.4**3]) * len(draws)
    assert chisquare(rounds, expected).pvalue > 1e-3
    picks = Counter(axis for d in draws for axis in d)
    assert set(picks) == {None, 1, 2}  # z (axis 0) is never flipped; one pick in three is the no-op
    assert chisquare([picks[None], picks[1], picks[2]]).pvalue > 1e-3


def test_models_genesis_transform_frequencies():
    small = np.random.default_rng(0).random(SMALL, dtype=np.float32)
    rng = np.random.default_rng(2024)
    n = 2000
    counts: Counter[str] = Counter()
    for _ in range(n):
        counts.update(t3.models_genesis_view(small, rng, **{**MG, **CHEAP})[2])
    for name, p in (("flip", 0.4), ("local-shuffle", 0.5), ("non-linear", 0.9)):
        assert chisquare([counts[name], n - counts[name]], [p * n, (1 - p) * n]).pvalue > 1e-3, name
    paint = [counts["in-paint"], counts["out-paint"], n - counts["in-paint"] - counts["out-paint"]]
    assert chisquare(paint, np.array([0.9 * 0.2, 0.9 * 0.8, 0.1]) * n).pvalue > 1e-3


def test_transvw_applies_elastic_then_exactly_one_distortion_at_a_quarter_each():
    small = np.random.default_rng(0).random(SMALL, dtype=np.float32)
    rng = np.random.default_rng(99)
    n = 2000
    picks: Counter[str] = Counter()
    for _ in range(n):
        _, y, names = t3.transvw_view(small, rng, **{**TRANSVW, **CHEAP})
        assert names[0] == "elastic" and len(names) == 2
        assert np.array_equal(y, small)  # the target is the original cube, not the deformed one
        picks[names[1]] += 1
    assert chisquare([picks[c] for c in t3.TRANSVW_CHOICES]).pvalue > 1e-3


def test_transvw_target_is_undeformed_and_choice_probs_are_checked(cube):
    x, y, _ = t3.transvw_view(cube, np.random.default_rng(1), **TRANSVW)
    assert np.array_equal(y, cube) and not np.array_equal(x, cube) and y is not cube
    with pytest.raises(ValueError, match="choice_probs"):
        t3.transvw_view(cube, np.random.default_rng(1), **{**TRANSVW, "choice_probs": (0.5, 0.5, 0.5, 0.0)})


def test_each_voxel_takes_a_value_of_its_last_covering_block_as_a_naive_loop_would(unique_cube):
    rng = np.random.default_rng(8)
    sizes = rng.integers(1, [4, 7, 7], size=(300, 3))
    starts = rng.integers(0, np.array(SHAPE) - sizes + 1)
    out = t3.shuffle_blocks(unique_cube, rng, starts=starts, sizes=sizes)
    last = np.full(SHAPE, -1)
    for i, ((z, y, x), (dz, dy, dx)) in enumerate(zip(starts, sizes, strict=True)):
        last[z:z + dz, y:y + dy, x:x + dx] = i
    assert np.array_equal(out[last < 0], unique_cube[last < 0])
    for i, ((z, y, x), (dz, dy, dx)) in enumerate(zip(starts, sizes, strict=True)):
        assert np.isin(out[last == i], unique_cube[z:z + dz, y:y + dy, x:x + dx]).all()

"""Batched TransVW views: their draws against transforms3d's per-sample draws, their renders against its functions."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import chi2_contingency, chisquare, ks_2samp

from dira.config import load_config
from dira.data import batch_random, batch_shuffle3d
from dira.data import batch_views3d as bv
from dira.data import transforms3d as t3
from dira.data.visual_word_views import cube_in_unit_range

SHAPE = (32, 64, 64)
SMALL = (12, 20, 20)
ALPHA = 1e-3  # distribution tests: fixed seeds, so a test either always passes or always fails
VIEWS = load_config([])["pretrain"]["transvw"]["views"]  # the paper's defaults


def views(**changes) -> dict:
    out = copy.deepcopy(VIEWS)
    out.update(changes)
    return out


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_distribution(a, b) -> bool:
    """Two samples of a discrete variable: chi-square on their joint histogram (rare values pooled)."""
    values = sorted(set(a) | set(b))
    table = np.array([[Counter(a)[v] for v in values], [Counter(b)[v] for v in values]], dtype=float)
    common = table.sum(0) >= 10
    table = np.c_[table[:, common], table[:, ~common].sum(1)] if (~common).any() else table
    return chi2_contingency(table[:, table.sum(0) > 0])[1] > ALPHA


def shuffle_params(starts: torch.Tensor, sizes: torch.Tensor, permutations: list) -> batch_shuffle3d.ShuffleParams:
    """ShuffleParams from explicit blocks and each block's permutation (drawing order), laid out as draws lay them."""
    order, groups = batch_shuffle3d.shuffle_layout(sizes)
    volumes = sizes.reshape(-1, 3)[order].prod(1)
    columns = batch_shuffle3d.column_starts(volumes)
    source = torch.empty(int(volumes.sum()), dtype=torch.int16)
    for row, block in enumerate(order.tolist()):
        source[columns[: len(permutations[block])] + row] = torch.as_tensor(permutations[block]).to(torch.int16)
    return batch_shuffle3d.ShuffleParams(starts, sizes, order, source, columns, groups)


def permutation(params: batch_shuffle3d.ShuffleParams, block: int) -> torch.Tensor:
    """Block ``block``'s (drawing index) source indices, in its raster order, read back from the layout."""
    row = int((params.order == block).nonzero())
    return params.source[params.columns[: int(params.sizes.reshape(-1, 3)[block].prod())] + row].long()


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    return np.random.default_rng(123).random(SHAPE, dtype=np.float32)


# ---- the random-number helpers -------------------------------------------------------------------------------
def test_integers_and_floats_are_uniform_on_their_ranges():
    ints = batch_random.integers(gen(0), torch.tensor([0, 5]).repeat(30000, 1), torch.tensor([2, 10]).repeat(30000, 1))
    assert chisquare(np.bincount(ints[:, 0].numpy(), minlength=3))[1] > ALPHA
    assert chisquare(np.bincount(ints[:, 1].numpy() - 5, minlength=6))[1] > ALPHA
    u = batch_random.uniform(gen(1), (50000,)).numpy()
    f = batch_random.uniform_f32(gen(2), (50000,)).numpy()
    assert f.dtype == np.float32 and np.array_equal(f * 2**24, np.floor(f * 2**24))  # rng.random(float32)'s lattice
    for sample in (u, f):
        assert sample.min() >= 0 and sample.max() < 1
        assert ks_2samp(sample, np.random.default_rng(3).random(50000))[1] > ALPHA


# ---- distributions: batched draws vs transforms3d's per-sample draws ---------------------------------------
def test_elastic_gate_and_choice_frequencies_match_transvw_view():
    v = views(elastic_prob=0.7, choice_probs=[0.1, 0.2, 0.3, 0.4],
              shuffling={"blocks": 2, "block_divisor": 2}, nonlinearity={"reverse_prob": 0.5, "curve_points": 16})
    tiny = np.zeros((4, 4, 4), np.float32)
    reference = [t3.transvw_view(tiny, np.random.default_rng(s), **v)[2] for s in range(3000)]
    reference = [f"{'elastic' in names}/{names[-1]}" for names in reference]
    deformed, choice = bv.draw_choices(gen(0), 20000, elastic_prob=0.7, choice_probs=v["choice_probs"])
    batched = [f"{bool(d)}/{t3.TRANSVW_CHOICES[int(c)]}" for d, c in zip(deformed, choice, strict=True)]
    assert same_distribution(reference, batched)
    expected = np.outer([0.3, 0.7], v["choice_probs"]).ravel() * len(batched)
    cells = [f"{d}/{c}" for d in (False, True) for c in t3.TRANSVW_CHOICES]
    assert chisquare([Counter(batched)[c] for c in cells], expected)[1] > ALPHA


@pytest.mark.parametrize("kind", ["in-paint", "out-paint"])
def test_painting_box_counts_sides_and_corners_match_transforms3d(kind):
    section = VIEWS["inpainting"] if kind == "in-paint" else VIEWS["outpainting"]
    boxes_of = t3.inpaint_boxes if kind == "in-paint" else t3.outpaint_boxes
    draw = bv.draw_inpaint if kind == "in-paint" else bv.draw_outpaint
    reference = [boxes_of(SMALL, np.random.default_rng(s), **section) for s in range(4000)]
    params = draw(gen(0), 4000, SMALL, **section)
    assert same_distribution([len(b) for b in reference], params.active.sum(1).tolist())
    lower = params.lower[params.active].numpy()
    sides = (params.upper - params.lower)[params.active].numpy()
    for axis in range(3):
        ref_sides = [box[axis].stop - box[axis].start for boxes in reference for box in boxes]
        ref_lower = [box[axis].start for boxes in reference for box in boxes]
        assert same_distribution(ref_sides, sides[:, axis].tolist())
        assert same_distribution(ref_lower, lower[:, axis].tolist())


def test_shuffle_block_sides_corners_and_permutations_are_uniform():
    params = batch_shuffle3d.draw_shuffle(gen(0), 2, SHAPE, **VIEWS["shuffling"])
    sizes, starts = params.sizes.view(-1, 3).numpy(), params.starts.view(-1, 3).numpy()
    rng = np.random.default_rng(0)  # local_shuffle's own two draws
    largest = np.array(SHAPE) // VIEWS["shuffling"]["block_divisor"]
    ref_sizes = rng.integers(1, largest + 1, size=(len(sizes), 3))
    ref_starts = rng.integers(0, np.array(SHAPE) - ref_sizes + 1)
    for axis in range(3):
        assert same_distribution(ref_sizes[:, axis].tolist(), sizes[:, axis].tolist())
        assert same_distribution(ref_starts[:, axis].tolist(), starts[:, axis].tolist())
    # column-major permutations: the 6 orders of 3 voxels equally likely; voxel 0 of a 7-voxel block anywhere
    threes = batch_shuffle3d.block_permutations(gen(1), torch.full((30000,), 3)).view(3, -1).T.long()
    codes, counts = np.unique((threes @ torch.tensor([9, 3, 1])).numpy(), return_counts=True)
    assert len(codes) == 6 and chisquare(counts)[1] > ALPHA
    sevens = batch_shuffle3d.block_permutations(gen(2), torch.full((20000,), 7)).view(7, -1).T.long()
    assert (sevens.sort(1).values == torch.arange(7)).all()
    assert chisquare(np.bincount((sevens == 0).int().argmax(1).numpy(), minlength=7))[1] > ALPHA


def test_local_shuffle_moves_voxels_as_transforms3d_does():
    """End to end (overlaps, later blocks winning): the histogram of each voxel's source offset per axis."""
    n = int(np.prod(SHAPE))
    unique = (np.random.default_rng(7).permutation(n).astype(np.float32) / n).reshape(SHAPE)
    order = np.argsort(unique, axis=None)

    def offsets(out: np.ndarray) -> np.ndarray:
        source = order[np.searchsorted(unique.ravel()[order], out.ravel())]
        return (np.array(np.unravel_index(source, SHAPE)) - np.indices(SHAPE).reshape(3, -1)).T

    reference = np.concatenate([offsets(t3.local_shuffle(unique, np.random.default_rng(s), **VIEWS["shuffling"]))
                                for s in range(2)])
    params = batch_shuffle3d.draw_shuffle(gen(0), 2, SHAPE, **VIEWS["shuffling"])
    batched = batch_shuffle3d.render_shuffle(torch.from_numpy(unique).expand(2, *SHAPE).contiguous(), params).numpy()
    batched = np.concatenate([offsets(b) for b in batched])
    for axis in range(3):
        assert same_distribution(reference[::7, axis].tolist(), batched[::7, axis].tolist())


def test_bezier_points_reversal_and_curve_values_match_transforms3d():
    cheap = {"reverse_prob": 0.3, "curve_points": 512}
    probes = np.array([0.1, 0.5, 0.8], np.float32).reshape(1, 1, 3)
    reference = np.array([t3.nonlinear_intensity(probes, np.random.default_rng(s), **cheap).ravel()
                          for s in range(3000)])
    params = bv.draw_curve(gen(0), 3000, **cheap)
    xs, ys = bv.curve_samples(params)  # render_curve applies them exactly as np.interp (tested below)
    batched = np.array([np.interp(probes.ravel(), x, y) for x, y in zip(xs.numpy(), ys.numpy(), strict=True)])
    for i in range(3):
        assert ks_2samp(reference[:, i], batched[:, i])[1] > ALPHA
    ref_points = np.array([np.random.default_rng(s).random((2, 2)) for s in range(3000)])
    assert ks_2samp(ref_points.ravel(), params.points.numpy().ravel())[1] > ALPHA
    assert chisquare(np.bincount(params.reverse.numpy(), minlength=2), [0.7 * 3000, 0.3 * 3000])[1] > ALPHA


def reference_fields(count: int, shape, elastic: dict) -> np.ndarray:
    """elastic_deform's displacement fields, as its docstring and code define them (one per sorted axis)."""
    fields = []
    for s in range(count):
        rng = np.random.default_rng(s)
        fields.append([elastic["alpha"] * gaussian_filter(rng.uniform(-1, 1, shape), elastic["sigma"], mode="constant")
                       for _ in sorted(set(elastic["axes"]))])
    return np.array(fields)


def field_statistics(fields: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: a centre and a corner value, and the product of the centre with its neighbour 4 voxels on."""
    z, y, x = (d // 2 for d in fields.shape[2:])
    centre = fields[:, 0, z, y, x]
    return {"centre": centre, "corner": fields[:, 0, 0, 0, 0], "lag4": centre * fields[:, 0, z, y, x + 4],
            "std": fields[:, 0].std(axis=(1, 2, 3))}


def test_elastic_displacements_match_transforms3d_statistics():
    shape, elastic = (16, 32, 32), VIEWS["elastic"]
    reference = field_statistics(reference_fields(300, shape, elastic))
    params = bv.draw_elastic(gen(0), 300, shape, **elastic)
    batched = field_statistics(bv.elastic_displacement(params)[:, 1:].double().numpy())  # the y field, as fields[0]
    for name, sample in reference.items():
        assert ks_2samp(sample, batched[name])[1] > ALPHA, name
    assert abs(batched["centre"].mean()) < 4 * batched["centre"].std() / np.sqrt(300)


def test_the_distribution_tests_reject_a_shifted_parameter():
    """Power: sigma 9 instead of 8, a reversal share of 0.4 instead of 0.3 and a choice share moved by 0.05 fail."""
    shape, elastic = (16, 32, 32), VIEWS["elastic"]
    reference = field_statistics(reference_fields(300, shape, elastic))
    shifted = bv.elastic_displacement(bv.draw_elastic(gen(0), 300, shape, **{**elastic, "sigma": 9.0}))
    assert ks_2samp(reference["std"], field_statistics(shifted[:, 1:].double().numpy())["std"])[1] < ALPHA
    reverse = bv.draw_curve(gen(0), 3000, reverse_prob=0.4, curve_points=8).reverse.numpy()
    assert chisquare(np.bincount(reverse, minlength=2), [0.7 * 3000, 0.3 * 3000])[1] < ALPHA
    _, choice = bv.draw_choices(gen(0), 20000, elastic_prob=1.0, choice_probs=[0.3, 0.2, 0.25, 0.25])
    assert chisquare(np.bincount(choice.numpy(), minlength=4), [5000] * 4)[1] < ALPHA


# ---- renders: the same parameters give transforms3d's pixels -----------------------------------------------
@pytest.mark.parametrize("axes", [(1, 2), (2,), (0, 1, 2)])
def test_elastic_render_equals_elastic_deform_given_its_noise(cube, axes):
    shape = SHAPE if axes == (1, 2) else SMALL
    source = cube if axes == (1, 2) else cube[: shape[0], : shape[1], : shape[2]].copy()
    elastic = {**VIEWS["elastic"], "axes": axes, **({} if axes == (1, 2) else {"alpha": 40.0, "sigma": 3.0})}
    expected = t3.elastic_deform(source, np.random.default_rng(5), **elastic)
    rng = np.random.default_rng(5)
    noise = {axis: rng.uniform(-1, 1, shape) for axis in sorted(axes)}  # elastic_deform's draws, in its order
    order = tuple(sorted(axes, reverse=True))
    params = bv.ElasticParams(torch.tensor(np.stack([noise[a] for a in order])[None], dtype=torch.float32), order,
                              elastic["alpha"], elastic["sigma"])
    field = bv.elastic_displacement(params)[0].double().numpy()
    for slot, axis in enumerate(order):
        smooth = elastic["alpha"] * gaussian_filter(noise[axis], elastic["sigma"], mode="constant")
        np.testing.assert_allclose(field[slot], smooth, atol=2e-5 * max(1.0, np.abs(smooth).max()))
    out = bv.render_elastic(torch.from_numpy(source)[None], params)[0].numpy()
    np.testing.assert_allclose(out, expected, atol=5e-5)  # borders included: grid_sample reflects as scipy does


def test_shuffle_render_equals_shuffle_blocks_given_its_permutations(cube):
    """shuffle_blocks' order is the argsort of its random keys (padding last): replayed, the pixels are identical."""
    cubes = np.stack([cube, cube[::-1, ::-1].copy()])
    starts, sizes, perms, expected = [], [], [], []
    for sample in range(2):
        rng = np.random.default_rng(9 + sample)
        size = rng.integers(1, np.array(SHAPE) // 10 + 1, size=(400, 3))
        start = rng.integers(0, np.array(SHAPE) - size + 1)
        expected.append(t3.shuffle_blocks(cubes[sample], np.random.default_rng(sample), starts=start, sizes=size))
        largest = tuple(size.max(0))
        keys = np.random.default_rng(sample).random((400, int(np.prod(largest))))
        keys[~(np.indices(largest).reshape(3, 1, -1) < size.T[:, :, None]).all(0)] = 2.0
        for block, ranked in enumerate(np.argsort(keys, axis=1)):
            z, y, x = np.unravel_index(ranked[: size[block].prod()], largest)
            perms.append(torch.tensor((z * size[block, 1] + y) * size[block, 2] + x))
        starts.append(start)
        sizes.append(size)
    params = shuffle_params(torch.tensor(np.array(starts)), torch.tensor(np.array(sizes)), perms)
    assert all(torch.equal(permutation(params, b), perms[b]) for b in range(0, 800, 53))
    out = batch_shuffle3d.render_shuffle(torch.from_numpy(cubes), params).numpy()
    assert np.array_equal(out, np.stack(expected))


def test_curve_samples_table_and_render_equal_transforms3d(cube):
    rng = np.random.default_rng(3)
    points, reverse = rng.random((2, 2)), rng.random() < VIEWS["nonlinearity"]["reverse_prob"]
    params = bv.CurveParams(torch.tensor(points)[None], torch.tensor([reverse]), VIEWS["nonlinearity"]["curve_points"])
    xs, ys = t3.bezier_lookup(np.random.default_rng(3), **VIEWS["nonlinearity"])
    got_x, got_y = bv.curve_samples(params)
    np.testing.assert_allclose(got_x[0].numpy(), xs, atol=1e-12)
    np.testing.assert_allclose(got_y[0].numpy(), ys, atol=1e-12)
    edges = np.arange(bv.CURVE_BINS + 1) / bv.CURVE_BINS
    np.testing.assert_allclose(bv.curve_table(params)[0].numpy(), np.interp(edges, xs, ys), atol=2e-6)
    expected = t3.nonlinear_intensity(cube, np.random.default_rng(3), **VIEWS["nonlinearity"])
    out = bv.render_curve(torch.from_numpy(cube)[None], params)[0].numpy()
    np.testing.assert_allclose(out, expected, atol=2e-6)
    both = bv.CurveParams(params.points.expand(2, 2, 2), torch.tensor([False, True]), 7)  # few points: polylines
    xs2, ys2 = bv.curve_samples(both)
    got = bv.render_curve(torch.from_numpy(cube[:2, None]), both)[:, 0].numpy()
    for row in range(2):
        np.testing.assert_allclose(got[row], np.interp(cube[row], xs2[row].numpy(), ys2[row].numpy()), atol=1e-5)


@pytest.mark.parametrize("kind", ["in-paint", "out-paint"])
def test_painting_render_equals_transforms3d_given_its_boxes_and_noise(cube, kind):
    seed = 21
    if kind == "in-paint":
        expected = t3.inpaint(cube, np.random.default_rng(seed), **VIEWS["inpainting"])
        rng = np.random.default_rng(seed)
        boxes = t3.inpaint_boxes(SHAPE, rng, **VIEWS["inpainting"])
        noise = np.zeros(SHAPE, np.float32)
        for box in boxes:  # inpaint's fills, box after box
            noise[box] = rng.random(tuple(s.stop - s.start for s in box), dtype=np.float32)
    else:
        expected = t3.outpaint(cube, np.random.default_rng(seed), **VIEWS["outpainting"])
        rng = np.random.default_rng(seed)
        noise = rng.random(SHAPE, dtype=np.float32)
        boxes = t3.outpaint_boxes(SHAPE, rng, **VIEWS["outpainting"])
    assert len(boxes) >= 2  # overlapping boxes are part of the test
    slots = len(boxes) + 1
    lower = torch.zeros(1, slots, 3, dtype=torch.int64)
    upper = torch.zeros(1, slots, 3, dtype=torch.int64)
    for k, box in enumerate(boxes):
        lower[0, k] = torch.tensor([s.start for s in box])
        upper[0, k] = torch.tensor([s.stop for s in box])
    params = bv.BoxParams(torch.arange(slots)[None] < len(boxes), lower, upper, torch.from_numpy(noise)[None])
    render = bv.render_inpaint if kind == "in-paint" else bv.render_outpaint
    assert np.array_equal(render(torch.from_numpy(cube)[None], params)[0].numpy(), expected)


# ---- the batch interface ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16])
def test_views_shapes_dtypes_range_and_targets(dtype):
    raw = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, *SMALL), dtype=np.uint8))
    cubes = raw if dtype == torch.uint8 else (raw.float() / 255).half()
    out = bv.TransVWBatchViews(views(choice_probs=[0.25] * 4))(cubes, gen(4))
    assert out["view"].shape == out["target"].shape == (6, 1, *SMALL)
    assert out["view"].dtype == out["target"].dtype == torch.float32
    assert out["view"].min() >= 0 and out["view"].max() <= 1
    expected = np.stack([cube_in_unit_range(c) for c in cubes.numpy()])
    assert np.array_equal(out["target"][:, 0].numpy(), expected)
    assert not torch.equal(out["view"], out["target"])


def test_partial_deformation_and_blocks_of_one_voxel_keep_what_they_should():
    cubes = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (12, *SMALL), dtype=np.uint8))
    v = views(elastic_prob=0.5, choice_probs=[1.0, 0.0, 0.0, 0.0], shuffling={"blocks": 50, "block_divisor": 100})
    params = bv.draw_transvw(gen(3), 12, SMALL, v)
    assert 0 < len(params.elastic_rows) < 12 and list(params.parts) == ["local-shuffle"]
    out = bv.TransVWBatchViews(v)(cubes, gen(3))
    still = np.setdiff1d(np.arange(12), params.elastic_rows.numpy())  # 1-voxel blocks move nothing
    assert torch.equal(out["view"][still], out["target"][still])
    assert not torch.equal(out["view"][params.elastic_rows], out["target"][params.elastic_rows])


def test_views_are_deterministic_for_a_generator_state_and_differ_across_seeds():
    cubes = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (8, *SMALL), dtype=np.uint8))
    make = bv.TransVWBatchViews(VIEWS)
    first, again, other = make(cubes, gen(7))["view"], make(cubes, gen(7))["view"], make(cubes, gen(8))["view"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    params = bv.draw_transvw(gen(7), 8, SMALL, VIEWS)
    assert sorted(torch.cat([rows for rows, _ in params.parts.values()]).tolist()) == list(range(8))


@pytest.mark.parametrize("changes, error", [
    ({"choice_probs": [0.5, 0.5, 0.5, 0.5]}, ValueError),
    ({"choice_probs": [0.5, 0.5, -0.5, 0.5]}, ValueError),
    ({"choice_probs": [1.0, 0.0, 0.0]}, ValueError),
    ({"elastic": {"alpha": 1.0, "sigma": 1.0, "axes": [3]}}, ValueError),
    ({"extra": 1}, TypeError),
    ({"shuffling": {"blocks": 3}}, TypeError),
])
def test_bad_views_are_refused(changes, error):
    with pytest.raises(error):
        bv.TransVWBatchViews(views(**changes))
    if error is ValueError and "choice_probs" in changes:  # transvw_view refuses them the same way
        with pytest.raises(ValueError):
            t3.transvw_view(np.zeros((4, 4, 4), np.float32), np.random.default_rng(0), **views(**changes))


def test_a_batch_that_is_not_four_dimensional_is_refused():
    with pytest.raises(ValueError, match="B, z, y, x"):
        bv.TransVWBatchViews(VIEWS)(torch.zeros(2, 1, *SMALL), gen(0))

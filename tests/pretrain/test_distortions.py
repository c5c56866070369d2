import numpy as np
import pytest

from dira.data.distortions import DistortionProbabilities, cutout, distort, local_shuffle, outpaint


@pytest.fixture
def image():
    return np.random.default_rng(0).uniform(0.1, 1.0, size=(224, 224)).astype(np.float32)


def test_cutout_zeroes_blocks_inside_the_margin_and_keeps_the_rest(image):
    out = cutout(image, np.random.default_rng(1))
    zeroed = out == 0
    assert zeroed.any()
    assert not zeroed[:3].any() and not zeroed[-3:].any() and not zeroed[:, :3].any() and not zeroed[:, -3:].any()
    np.testing.assert_array_equal(out[~zeroed], image[~zeroed])
    # blocks are 10-70 px: at most 10 of them
    assert zeroed.sum() <= 10 * 70 * 70


def test_outpaint_keeps_only_windows_of_the_original(image):
    out = outpaint(image, np.random.default_rng(2))
    kept = out != 0
    np.testing.assert_array_equal(out[kept], image[kept])
    assert 0 < kept.mean() < 1
    # each window is the image minus 50-70 px per side: a large part of it
    assert kept.sum() >= (224 - 70) ** 2


def test_local_shuffle_permutes_pixels_without_changing_their_values(image):
    out = local_shuffle(image, np.random.default_rng(3))
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(np.sort(out, axis=None), np.sort(image, axis=None))
    changed = out != image
    assert changed.sum() <= 10 * 2 * 15 * 15


def test_block_sizes_scale_with_the_image():
    small = np.ones((56, 56), dtype=np.float32)
    zeroed = [(cutout(small, np.random.default_rng(s)) == 0).sum() for s in range(20)]
    assert max(zeroed) <= 10 * 18 * 18  # 70 px at 224 is 18 px at 56


def test_distort_draws_each_kind_with_its_probability(image):
    probs = DistortionProbabilities(cutout=0.3, outpaint=0.05, shuffle=0.3)
    rng = np.random.default_rng(4)
    kinds = {"identity": 0, "cutout": 0, "outpaint": 0, "shuffle": 0}
    for _ in range(2000):
        out = distort(image, rng, probs)
        if out is image:
            kinds["identity"] += 1
        elif (out[:3] == 0).all():  # only out-painting blanks the 3 px border
            kinds["outpaint"] += 1
        elif (out == 0).any():
            kinds["cutout"] += 1
        else:
            kinds["shuffle"] += 1
    assert kinds["cutout"] / 2000 == pytest.approx(0.30, abs=0.04)
    assert kinds["outpaint"] / 2000 == pytest.approx(0.05, abs=0.02)
    assert kinds["shuffle"] / 2000 == pytest.approx(0.30, abs=0.04)
    assert kinds["identity"] / 2000 == pytest.approx(0.35, abs=0.04)


def test_probabilities_beyond_one_are_rejected():
    with pytest.raises(ValueError):
        DistortionProbabilities(cutout=0.6, outpaint=0.2, shuffle=0.3)

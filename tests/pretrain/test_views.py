import numpy as np
import torch

from dira.data.distortions import DistortionProbabilities
from dira.data.views import ViewSettings, make_views, sample_crop

NO_DISTORTION = DistortionProbabilities(0.0, 0.0, 0.0)


def _image(size=64):
    yy, xx = np.mgrid[:size, :size]
    return ((xx * 3 + yy) % 256).astype(np.uint8)  # asymmetric, so flips are visible


def test_views_are_a_pure_function_of_the_seed():
    a = make_views(_image(), np.random.default_rng(7), ViewSettings(), DistortionProbabilities())
    b = make_views(_image(), np.random.default_rng(7), ViewSettings(), DistortionProbabilities())
    c = make_views(_image(), np.random.default_rng(8), ViewSettings(), DistortionProbabilities())
    assert set(a) == {"view1", "view2", "target"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["view1"], c["view1"])


def test_without_restoration_there_is_no_target():
    views = make_views(_image(), np.random.default_rng(0), ViewSettings(), None)
    assert set(views) == {"view1", "view2"}
    assert views["view1"].shape == (1, 64, 64) and views["view1"].dtype == torch.float32
    assert views["view1"].min() >= 0.0 and views["view1"].max() <= 1.0


def test_target_is_the_crop_before_photometric_changes_and_follows_the_flip():
    # No jitter, blur or distortion, always flip: view 1 is then exactly the (flipped) target.
    plain = ViewSettings(jitter_prob=0.0, blur_prob=0.0, flip_prob=1.0, target_follows_flip=True)
    views = make_views(_image(), np.random.default_rng(3), plain, NO_DISTORTION)
    assert torch.equal(views["view1"], views["target"])
    # The reference's behaviour (target not flipped) is available and differs.
    unflipped = ViewSettings(jitter_prob=0.0, blur_prob=0.0, flip_prob=1.0, target_follows_flip=False)
    views = make_views(_image(), np.random.default_rng(3), unflipped, NO_DISTORTION)
    assert torch.equal(views["view1"], views["target"].flip(-1))


def test_jitter_changes_the_view_but_not_the_target():
    jitter = ViewSettings(jitter_prob=1.0, blur_prob=0.0, flip_prob=0.0)
    views = make_views(_image(), np.random.default_rng(5), jitter, NO_DISTORTION)
    assert not torch.allclose(views["view1"], views["target"])


def test_crops_respect_the_area_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = sample_crop(rng, 100, 100, (0.2, 1.0))
        assert top >= 0 and top + h <= 100 and left >= 0 and left + w <= 100
        assert 0.15 * 100 * 100 <= h * w <= 100 * 100

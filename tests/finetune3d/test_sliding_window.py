"""Sliding-window segmentation: windows cover the volume, the average is the plain mean of the windows,
and a network that sees every voxel alone (pointwise) gives the same map as when applied to the whole volume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dira.eval.sliding_window import coverage, sliding_window_probabilities, window_starts

CPU = torch.device("cpu")


@pytest.mark.parametrize(("size", "window", "overlap", "expected"), [
    (32, 16, 0.5, [0, 8, 16]),
    (35, 16, 0.5, [0, 8, 16, 19]),   # the last window flush with the end
    (16, 16, 0.5, [0]),
    (10, 16, 0.5, [0]),              # smaller than the window: one (padded) window
    (20, 8, 0.0, [0, 8, 12]),
    (5, 4, 0.9, [0, 1]),             # the step is at least one voxel
])
def test_window_starts(size, window, overlap, expected):
    assert window_starts(size, window, overlap) == expected


def test_bad_overlap_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        window_starts(10, 4, 1.0)


def test_coverage_counts_the_windows_over_each_voxel():
    shape, window, overlap = (13, 9, 20), (4, 4, 8), 0.5
    counts = np.zeros(shape, int)
    for z, y, x in itertools.product(*(window_starts(s, w, overlap) for s, w in zip(shape, window, strict=True))):
        counts[z:z + 4, y:y + 4, x:x + 8] += 1
    assert np.array_equal(coverage(shape, window, overlap), counts) and counts.min() >= 1


@pytest.mark.parametrize("shape", [(12, 20, 24), (6, 16, 18), (8, 16, 16)])
def test_identity_returns_the_volume(shape):
    volume = np.random.default_rng(0).random((1, *shape)).astype(np.float32)
    out = sliding_window_probabilities(lambda b: b[:, 0], volume, window=(8, 16, 16), overlap=0.5, batch_size=3,
                                       device=CPU, pad_value=0.0)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, volume[0], rtol=1e-6)


def test_a_pointwise_network_matches_its_prediction_on_the_whole_volume():
    torch.manual_seed(0)
    net = torch.nn.Conv3d(2, 1, kernel_size=1)  # translation-equivariant with no border effects
    volume = np.random.default_rng(1).random((2, 11, 19, 21)).astype(np.float32)

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(net(batch))[:, 0]

    out = sliding_window_probabilities(probabilities, volume, window=(8, 8, 8), overlap=0.25, batch_size=5,
                                       device=CPU, pad_value=0.0)
    with torch.no_grad():
        direct = probabilities(torch.from_numpy(volume)[None])[0].numpy()
    np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-6)


def test_each_voxel_is_the_mean_of_the_windows_covering_it_whatever_the_batch():
    """A 'network' that answers each window with one number of its own: the map must be their plain mean."""
    shape, window = (10, 12, 7), (4, 8, 4)
    position = np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape)  # the window's corner says where it is
    value = {}  # corner -> the window's answer

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        corners = batch[:, 0, 0, 0, 0].long().tolist()
        answers = [value.setdefault(c, float(np.sin(c) ** 2)) for c in corners]
        return torch.tensor(answers)[:, None, None, None].expand(-1, *window)

    outs = [sliding_window_probabilities(probabilities, position, window=window, overlap=0.5, batch_size=b,
                                         device=CPU, pad_value=-1.0) for b in (1, 4, 100)]
    sums, counts = np.zeros(shape), np.zeros(shape)
    starts = itertools.product(*(window_starts(s, w, 0.5) for s, w in zip(shape, window, strict=True)))
    for z, y, x in starts:
        sums[z:z + window[0], y:y + window[1], x:x + window[2]] += np.sin(position[0, z, y, x]) ** 2
        counts[z:z + window[0], y:y + window[1], x:x + window[2]] += 1
    assert len(value) == 4 * 2 * 3  # one answer per window, the same in every run
    for out in outs:
        np.testing.assert_allclose(out, sums / counts, rtol=1e-5)


def test_padding_stays_outside_the_returned_map():
    volume = np.ones((1, 5, 16, 16), np.float32)
    seen = []

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return batch[:, 0]

    out = sliding_window_probabilities(probabilities, volume, window=(8, 16, 16), overlap=0.5, batch_size=2,
                                       device=CPU, pad_value=0.0)
    assert out.shape == (5, 16, 16) and np.all(out == 1.0)
    assert seen[0].shape == (1, 1, 8, 16, 16) and torch.all(seen[0][0, 0, 5:] == 0)  # padded with pad_value

"""``apply_uncertainty``: CheXpert label codes -> float32 training targets under the four U-policies."""

from __future__ import annotations

import numpy as np
import pytest

from dira.data.sources.chexpert import apply_uncertainty
from dira.errors import InputError

# positive, negative, uncertain, blank, twice, as a (2, 4) batch
CODES = np.array([[1, 0, -1, -2], [-1, -2, 0, 1]], np.int8)


@pytest.mark.parametrize("policy, value", [("ones", 1.0), ("zeros", 0.0)])
def test_fixed_policies(policy, value):
    targets = apply_uncertainty(CODES, policy, np.random.default_rng(0))
    assert targets.dtype == np.float32 and targets.shape == CODES.shape
    assert targets.tolist() == [[1.0, 0.0, value, 0.0], [value, 0.0, 0.0, 1.0]]


@pytest.mark.parametrize("policy, low, high", [("lsr-ones", 0.55, 0.85), ("lsr-zeros", 0.0, 0.3)])
def test_label_smoothing_policies_draw_from_their_range_anew_each_time(policy, low, high):
    rng = np.random.default_rng(0)
    codes = np.tile(CODES, (500, 1))
    uncertain = codes == -1
    first, second = apply_uncertainty(codes, policy, rng), apply_uncertainty(codes, policy, rng)
    assert first.dtype == np.float32
    for targets in (first, second):
        assert np.array_equal(targets[~uncertain], (codes[~uncertain] == 1).astype(np.float32))  # blank -> 0
        drawn = targets[uncertain]
        assert drawn.min() >= low and drawn.max() < high
        assert abs(drawn.mean() - (low + high) / 2) < 0.02 and drawn.std() > 0.05  # uniform, not constant
    assert not np.array_equal(first[uncertain], second[uncertain])
    again = apply_uncertainty(codes, policy, np.random.default_rng(0))
    assert np.array_equal(again, first)  # reproducible from the generator's seed


def test_codes_are_not_changed_and_a_1d_row_works():
    codes = CODES.copy()
    row = apply_uncertainty(codes[0], "ones", np.random.default_rng(0))
    assert row.tolist() == [1.0, 0.0, 1.0, 0.0] and np.array_equal(codes, CODES)


def test_unknown_policy_and_codes_are_rejected():
    with pytest.raises(InputError, match="unknown uncertainty policy 'U-Ones'"):
        apply_uncertainty(CODES, "U-Ones", np.random.default_rng(0))
    with pytest.raises(ValueError, match="label codes must be in"):
        apply_uncertainty(np.array([1, 255], np.uint8), "ones", np.random.default_rng(0))

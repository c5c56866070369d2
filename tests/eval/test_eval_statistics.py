from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dira.eval.statistics import stars, summarize, ttest_p


def test_summarize_uses_the_sample_std():
    mean, std, n = summarize([1.0, 2.0, 3.0, 4.0])
    assert (mean, n) == (2.5, 4)
    assert std == pytest.approx(math.sqrt(5 / 3))  # squared deviations 2.25+0.25+0.25+2.25 over n-1 = 3


def test_summarize_of_one_run_has_no_std():
    mean, std, n = summarize([0.8])
    assert (mean, n) == (0.8, 1) and math.isnan(std)


def test_ttest_matches_a_hand_example_and_scipy():
    # Means 2 and 5, pooled sd 1: t = -3 / sqrt(2/3) = -3.674 with 4 degrees of freedom.
    assert ttest_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.0213116, abs=1e-6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.81, 0.002, 10), rng.normal(0.80, 0.003, 10)
    assert ttest_p(a, b) == stats.ttest_ind(a, b, equal_var=True).pvalue
    assert ttest_p(a, b) != stats.ttest_ind(a, b, equal_var=False).pvalue


def test_ttest_needs_two_runs_per_side():
    assert math.isnan(ttest_p([0.8], [0.7, 0.71]))
    assert math.isnan(ttest_p([0.8, 0.81], []))


@pytest.mark.parametrize(("p", "mark"), [
    (0.0009, "***"), (0.001, "**"), (0.0099, "**"), (0.01, "*"), (0.0499, "*"), (0.05, "n.s."), (0.7, "n.s."),
    (math.nan, ""),
])
def test_stars_thresholds(p, mark):
    assert stars(p) == mark

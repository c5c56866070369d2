"""Statistics over repeated fine-tuning runs: mean ± std and the t-test behind the significance stars.

The paper reports mean ± std over runs and marks gains over the base method with stars. The test
used is not printed; the independent two-sample t-test with equal variances over the per-seed
values is the JLiangLab practice, and what is implemented here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def summarize(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n); std is nan for a single run, both nan for none."""
    arr = np.asarray(values, dtype=float)
    n = int(arr.size)
    mean = float(arr.mean()) if n else float("nan")
    std = float(arr.std(ddof=1)) if n > 1 else float("nan")
    return mean, std, n


def ttest_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the independent two-sample t-test (equal variances); nan if a side has < 2 runs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=True).pvalue)


def stars(p: float) -> str:
    """The paper's significance marks; an untestable comparison (nan) gets no mark at all."""
    if not np.isfinite(p):
        return ""
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return "n.s."

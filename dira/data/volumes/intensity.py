"""HU windowing: the intensity scaling Models Genesis and DiRA-3D feed their networks (clip, then map to [0, 1])."""

from __future__ import annotations

import numpy as np


def window(volume: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """float32 copy of ``volume`` clipped to [lower, upper] (HU) and scaled linearly so that lower → 0, upper → 1.

    The bounds are the caller's (the config's), never defaults here: Models Genesis uses [-1000, 1000] for CT.
    """
    if not (np.isfinite(lower) and np.isfinite(upper) and upper > lower):
        raise ValueError(f"HU window needs finite lower < upper, got [{lower}, {upper}]")
    out = np.asarray(volume).astype(np.float32, copy=True)
    np.clip(out, lower, upper, out=out)
    out -= np.float32(lower)
    out /= np.float32(upper - lower)
    return out

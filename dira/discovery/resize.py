"""Resizing volumes and crops to a fixed grid without aliasing: the autoencoder's inputs, the rescaled words."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def resize_volume(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """float32 ``volume`` resampled to ``shape`` by linear interpolation on the voxel-edge grid.

    Axes that shrink are low-passed first (Gaussian, sigma = (factor - 1) / 2, scikit-image's anti-aliasing
    rule): a CT scan shrunk 4x in plane then averages its voxels instead of sampling every fourth one, so a
    patient's feature does not hinge on which voxels the grid happens to hit. Values stay within the input's
    range (both steps are convex combinations), so a [0, 1] window stays in [0, 1].
    """
    volume = np.asarray(volume, np.float32)
    target = tuple(int(n) for n in shape)
    if len(target) != volume.ndim or min(target) < 1:
        raise ValueError(f"cannot resize a {volume.shape} volume to {target}")
    if target == volume.shape:
        return volume.copy()
    factors = np.asarray(volume.shape, np.float64) / np.asarray(target, np.float64)
    sigma = np.maximum(0.0, (factors - 1) / 2)
    if sigma.any():
        volume = ndimage.gaussian_filter(volume, sigma, mode="nearest")
    out = ndimage.zoom(volume, 1 / factors, order=1, mode="nearest", grid_mode=True)
    if out.shape != target:  # zoom rounds in * zoom; a float error of a half voxel would show here
        raise AssertionError(f"zoom gave {out.shape}, expected {target}")
    return out

"""Whole-volume segmentation from a network trained on patches: overlapping windows, probabilities averaged.

LiTS and BraTS are scored over their whole test volumes, not over patches: the paper segments the liver
and the brain tumour in the scan, and patches chosen around the organ (half of the training patches are
centred on it) would score a network that never has to reject the rest of the body. So the patch
network slides over each test volume in windows of the training patch shape, consecutive windows
overlapping by ``overlap`` of their side (the last one flush with the volume's end, so every voxel is
covered), and each voxel takes the mean of the probabilities of the windows that cover it (uniform
weights). Along an axis where the volume is smaller than the window it is padded at the end with
``pad_value`` (the preparers' background), and the padding is cut off again.

The sums are accumulated in one float32 array of the volume's size; the number of windows covering a
voxel is the product of per-axis counts, so the mean needs no second array.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

Probabilities = Callable[[torch.Tensor], torch.Tensor]  # (B, C, *window) -> (B, *window) in [0, 1]


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Starts along one axis: a step of ``window x (1 - overlap)`` (at least 1), the last window ending at
    ``max(size, window)``."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    if size < 1 or window < 1:
        raise ValueError(f"size and window must be positive, got {size} and {window}")
    step = max(1, math.floor(window * (1 - overlap)))
    last = max(size - window, 0)
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def axis_coverage(size: int, window: int, overlap: float) -> np.ndarray:
    """How many windows cover each index of one axis (of the padded length ``max(size, window)``)."""
    counts = np.zeros(max(size, window), np.int64)
    for start in window_starts(size, window, overlap):
        counts[start:start + window] += 1
    return counts


def coverage(shape: Sequence[int], window: Sequence[int], overlap: float) -> np.ndarray:
    """Windows covering each voxel of a volume of ``shape``: the outer product of the per-axis counts."""
    z, y, x = (axis_coverage(s, w, overlap)[:s] for s, w in zip(shape, window, strict=True))
    return z[:, None, None] * y[None, :, None] * x[None, None, :]


def sliding_window_probabilities(probabilities: Probabilities, volume: np.ndarray, *, window: Sequence[int],
                                 overlap: float, batch_size: int, device: torch.device,
                                 pad_value: float) -> np.ndarray:
    """Mean window probabilities (z, y, x) float32 over ``volume`` (C, z, y, x).

    ``probabilities`` takes a batch of windows (B, C, *window) on ``device`` and returns (B, *window).
    """
    if volume.ndim != 4 or len(window) != 3:
        raise ValueError(f"expected a (C, z, y, x) volume and a (z, y, x) window, got {volume.shape} and {window}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shape = volume.shape[1:]
    padded_shape = tuple(max(s, w) for s, w in zip(shape, window, strict=True))
    padded = volume
    if padded_shape != shape:
        pads = [(0, 0), *((0, p - s) for p, s in zip(padded_shape, shape, strict=True))]
        padded = np.pad(volume, pads, constant_values=pad_value)
    starts = list(itertools.product(*(window_starts(s, w, overlap) for s, w in zip(shape, window, strict=True))))
    sums = np.zeros(padded_shape, np.float32)
    for first in range(0, len(starts), batch_size):
        batch_starts = starts[first:first + batch_size]
        windows = np.stack([padded[:, z:z + window[0], y:y + window[1], x:x + window[2]]
                            for z, y, x in batch_starts])
        with torch.no_grad():
            batch = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(device)
            out = probabilities(batch).float().cpu().numpy()
        if out.shape != (len(batch_starts), *window):
            raise ValueError(f"probabilities returned shape {out.shape}, expected {(len(batch_starts), *window)}")
        for (z, y, x), probs in zip(batch_starts, out, strict=True):
            sums[z:z + window[0], y:y + window[1], x:x + window[2]] += probs
    # Divided axis by axis (the count is their product): no count array of the volume's size.
    for axis, (size, side) in enumerate(zip(shape, window, strict=True)):
        counts = axis_coverage(size, side, overlap).astype(np.float32)
        sums /= counts.reshape([-1 if a == axis else 1 for a in range(3)])
    return sums[: shape[0], : shape[1], : shape[2]]

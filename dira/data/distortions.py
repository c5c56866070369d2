"""Restoration distortions of DiRA's 2D reference: cut-out, out-painting and local shuffling.

Block sizes are the reference's pixel sizes at 224 px, scaled with the image, so the demo's small images
see the same relative damage. One deliberate departure: the reference's non-overlap test for the shuffled
block pairs compares the y ranges with ``or`` and so almost never rejects; here the two blocks of a pair
really do not overlap (with a bounded number of tries), which is what the code evidently intended.

All functions take and return float32 (H, W) arrays and draw every random number from the generator
they are given, so a sample's distortion is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_SIZE = 224


@dataclass(frozen=True)
class DistortionProbabilities:
    """Chances of each distortion (``pretrain.distortion``); the remainder leaves the view intact."""

    cutout: float
    outpaint: float
    shuffle: float

    def __post_init__(self) -> None:
        if min(self.cutout, self.outpaint, self.shuffle) < 0 or self.cutout + self.outpaint + self.shuffle > 1:
            raise ValueError(f"distortion probabilities must be >= 0 and sum to <= 1, got {self}")


def _scaled(size: int, pixels: float) -> int:
    return max(1, round(pixels * size / REFERENCE_SIZE))


def cutout(image: np.ndarray, rng: np.random.Generator, max_blocks: int = 10, stop_prob: float = 0.1) -> np.ndarray:
    """Zero up to ``max_blocks`` rectangles with sides of 10-70 px (at 224), kept 3 px off the border."""
    out = image.copy()
    h, w = image.shape
    margin = _scaled(h, 3)
    for _ in range(max_blocks):
        bh = int(rng.integers(_scaled(h, 10), _scaled(h, 70) + 1))
        bw = int(rng.integers(_scaled(w, 10), _scaled(w, 70) + 1))
        y = int(rng.integers(margin, max(margin + 1, h - bh - margin)))
        x = int(rng.integers(margin, max(margin + 1, w - bw - margin)))
        out[y:y + bh, x:x + bw] = 0.0
        if rng.random() < stop_prob:
            break
    return out


def outpaint(image: np.ndarray, rng: np.random.Generator, max_windows: int = 10, stop_prob: float = 0.1) -> np.ndarray:
    """Blank the image except up to ``max_windows`` large windows (sides 224 - U[50, 70] px) kept from it."""
    out = np.zeros_like(image)
    h, w = image.shape
    margin = _scaled(h, 3)
    for _ in range(max_windows):
        bh = h - int(rng.integers(_scaled(h, 50), _scaled(h, 70) + 1))
        bw = w - int(rng.integers(_scaled(w, 50), _scaled(w, 70) + 1))
        y = int(rng.integers(margin, max(margin + 1, h - bh - margin)))
        x = int(rng.integers(margin, max(margin + 1, w - bw - margin)))
        out[y:y + bh, x:x + bw] = image[y:y + bh, x:x + bw]
        if rng.random() < stop_prob:
            break
    return out


def local_shuffle(image: np.ndarray, rng: np.random.Generator, pairs: int = 10, tries: int = 20) -> np.ndarray:
    """Swap ``pairs`` pairs of same-sized small blocks (sides 10-15 px at 224) that do not overlap."""
    out = image.copy()
    h, w = image.shape
    for _ in range(pairs):
        bh = int(rng.integers(_scaled(h, 10), _scaled(h, 15) + 1))
        bw = int(rng.integers(_scaled(w, 10), _scaled(w, 15) + 1))
        for _ in range(tries):
            y1, y2 = (int(v) for v in rng.integers(0, h - bh + 1, size=2))
            x1, x2 = (int(v) for v in rng.integers(0, w - bw + 1, size=2))
            if abs(y1 - y2) >= bh or abs(x1 - x2) >= bw:
                block = out[y1:y1 + bh, x1:x1 + bw].copy()
                out[y1:y1 + bh, x1:x1 + bw] = out[y2:y2 + bh, x2:x2 + bw]
                out[y2:y2 + bh, x2:x2 + bw] = block
                break
    return out


def distort(image: np.ndarray, rng: np.random.Generator, probabilities: DistortionProbabilities) -> np.ndarray:
    """Draw one of cut-out / out-painting / local shuffling / nothing with the configured probabilities."""
    r = rng.random()
    if r < probabilities.cutout:
        return cutout(image, rng)
    r -= probabilities.cutout
    if r < probabilities.outpaint:
        return outpaint(image, rng)
    r -= probabilities.outpaint
    if r < probabilities.shuffle:
        return local_shuffle(image, rng)
    return image

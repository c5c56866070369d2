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


Box = tuple[int, int, int, int]  # y, x, h, w


def _stopping_boxes(rng: np.random.Generator, h: int, w: int, low: int, high: int, shrink: bool, max_boxes: int,
                    stop_prob: float) -> list[Box]:
    """Up to ``max_boxes`` boxes, the loop stopping after each with ``stop_prob``; sides in [low, high] px at 224,
    or with ``shrink`` the image side minus that; corners kept 3 px (at 224) off the border."""
    boxes: list[Box] = []
    margin = _scaled(h, 3)
    for _ in range(max_boxes):
        bh = int(rng.integers(_scaled(h, low), _scaled(h, high) + 1))
        bw = int(rng.integers(_scaled(w, low), _scaled(w, high) + 1))
        if shrink:
            bh, bw = h - bh, w - bw
        y = int(rng.integers(margin, max(margin + 1, h - bh - margin)))
        x = int(rng.integers(margin, max(margin + 1, w - bw - margin)))
        boxes.append((y, x, bh, bw))
        if rng.random() < stop_prob:
            break
    return boxes


def cutout_boxes(rng: np.random.Generator, h: int, w: int, max_blocks: int = 10, stop_prob: float = 0.1) -> list[Box]:
    """The blocks cut-out zeroes: sides of 10-70 px (at 224)."""
    return _stopping_boxes(rng, h, w, 10, 70, False, max_blocks, stop_prob)


def outpaint_boxes(rng: np.random.Generator, h: int, w: int, max_windows: int = 10,
                   stop_prob: float = 0.1) -> list[Box]:
    """The windows out-painting keeps: sides of 224 - U[50, 70] px (at 224)."""
    return _stopping_boxes(rng, h, w, 50, 70, True, max_windows, stop_prob)


def shuffle_pairs(rng: np.random.Generator, h: int, w: int, pairs: int = 10, tries: int = 20) -> list[tuple[Box, Box]]:
    """``pairs`` pairs of same-sized blocks (sides 10-15 px at 224), each the first of ``tries`` placements that
    do not overlap; a pair without one is left out."""
    found: list[tuple[Box, Box]] = []
    for _ in range(pairs):
        bh = int(rng.integers(_scaled(h, 10), _scaled(h, 15) + 1))
        bw = int(rng.integers(_scaled(w, 10), _scaled(w, 15) + 1))
        for _ in range(tries):
            y1, y2 = (int(v) for v in rng.integers(0, h - bh + 1, size=2))
            x1, x2 = (int(v) for v in rng.integers(0, w - bw + 1, size=2))
            if abs(y1 - y2) >= bh or abs(x1 - x2) >= bw:
                found.append(((y1, x1, bh, bw), (y2, x2, bh, bw)))
                break
    return found


def zero_boxes(image: np.ndarray, boxes: list[Box]) -> None:
    """Cut-out's rendering, in place: every box zeroed."""
    for y, x, bh, bw in boxes:
        image[y:y + bh, x:x + bw] = 0.0


def keep_only_boxes(image: np.ndarray, boxes: list[Box]) -> None:
    """Out-painting's rendering, in place: everything outside the boxes zeroed."""
    kept = [image[y:y + bh, x:x + bw].copy() for y, x, bh, bw in boxes]
    image[:] = 0.0
    for (y, x, bh, bw), block in zip(boxes, kept, strict=True):
        image[y:y + bh, x:x + bw] = block


def swap_blocks(image: np.ndarray, pairs: list[tuple[int, int, int, int, int, int]]) -> None:
    """Local shuffling's rendering, in place: each pair (y1, x1, y2, x2, h, w) of blocks swapped, in order."""
    for y1, x1, y2, x2, bh, bw in pairs:
        block = image[y1:y1 + bh, x1:x1 + bw].copy()
        image[y1:y1 + bh, x1:x1 + bw] = image[y2:y2 + bh, x2:x2 + bw]
        image[y2:y2 + bh, x2:x2 + bw] = block


def cutout(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero up to 10 rectangles with sides of 10-70 px (at 224), kept 3 px off the border."""
    out = image.copy()
    zero_boxes(out, cutout_boxes(rng, *image.shape))
    return out


def outpaint(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blank the image except up to 10 large windows (sides 224 - U[50, 70] px) kept from it."""
    out = image.copy()
    keep_only_boxes(out, outpaint_boxes(rng, *image.shape))
    return out


def local_shuffle(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap 10 pairs of same-sized small blocks (sides 10-15 px at 224) that do not overlap, one after another."""
    out = image.copy()
    pairs = shuffle_pairs(rng, *image.shape)
    swap_blocks(out, [(y1, x1, y2, x2, bh, bw) for (y1, x1, bh, bw), (y2, x2, _, _) in pairs])
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

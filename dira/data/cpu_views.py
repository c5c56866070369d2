"""A batch's drawn views rendered on a CPU: image by image, each step on one view that stays in cache.

The batched tensor ops of :mod:`dira.data.batch_views` suit a GPU; on a CPU each of their ~30 passes streams
the whole batch through memory (12.8 MB of float views at batch 64), and the gathers that pick the views a
step applies to copy them out and back. Here every view is finished before the next starts, in a few calls
that touch ~250 KB: the uint8 crop resize (:func:`dira.data.crop_resample.resize_crop_uint8`), the flip on
those 8 bits, then brightness, contrast and (unblurred) solarisation as one 256-entry table from uint8 to float
(all are per-pixel maps of the crop's levels; the contrast's mean is the crop's mean level, corrected for the
levels a brightness above 1 clipped), OpenCV's separable Gaussian filter with torchvision's kernel and reflected
borders, and the distortions as the per-image recipe's slice assignments (:mod:`dira.data.distortions`). Both
views of an image are made in turn, so the second crop reads a source the first left in cache. The values are
those of the batched ops to float rounding (tests/pretrain/test_batch_views.py renders both);
``benchmarks/views.py`` measures both.

Flipping before the photometric steps instead of after changes nothing: jitter and solarisation act per pixel,
and a Gaussian blur with reflected borders is symmetric.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from dira.data.batch_distortions import CUTOUT, OUTPAINT, SHUFFLE, DistortionDraws
from dira.data.crop_resample import resize_crop_uint8
from dira.data.distortions import REFERENCE_SIZE, keep_only_boxes, swap_blocks, zero_boxes
from dira.data.views import SOLARIZE_THRESHOLD

if TYPE_CHECKING:
    from dira.data.batch_views import ViewDraws

# Level v as a float: exactly uint8 -> float32 / 255, as the batched path converts.
LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)
_LEVELS64 = LEVELS.astype(np.float64)


def _clamp(table: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(table, 0.0, out=table), 1.0, out=table)  # np.clip costs 5x more on 256 values


def level_table(levels: np.ndarray, brightness: float, contrast: float, brightness_first: bool,
                solarize: bool) -> np.ndarray:
    """(256,) float32: what brightness, contrast (blend with the image mean) and solarisation make of each level.

    torchvision's adjust_brightness / adjust_contrast of a float image, each clamped to [0, 1], in the drawn
    order; the mean the contrast blends with is that of its input: the mean level of the uint8 crop
    ``levels`` times the brightness factor when that came first, the levels it clipped counted as 1.
    """
    table, mean_scale = _LEVELS64.copy(), 1.0
    for step in ("brightness", "contrast") if brightness_first else ("contrast", "brightness"):
        if step == "brightness":
            _clamp(np.multiply(table, brightness, out=table))
            mean_scale = brightness
        elif contrast != 1.0:
            mean = mean_scale * cv2.mean(levels)[0] / 255.0
            if mean_scale > 1.0:  # the levels above 255 / b were clipped to 1: count those as 1, not b v / 255
                above = cv2.threshold(levels, math.floor(255.0 / mean_scale), 0, cv2.THRESH_TOZERO)[1]
                clipped = cv2.countNonZero(above)
                if clipped:
                    mean += (clipped - mean_scale * cv2.sumElems(above)[0] / 255.0) / levels.size
            _clamp(np.add(np.multiply(table, contrast, out=table), (1.0 - contrast) * mean, out=table))
    if solarize:
        table = np.where(table >= SOLARIZE_THRESHOLD, 1.0 - table, table)
    return table.astype(np.float32)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """torchvision's gaussian_blur kernel: 2 ceil(3σ) + 1 taps of exp(-x² / 2σ²), normalised (OpenCV computes
    it in double for any σ > 0)."""
    return cv2.getGaussianKernel(2 * math.ceil(3 * sigma) + 1, sigma, cv2.CV_32F)


class _Distortions:
    """A batch's distortion draws as Python lists, read once: per-image tensor indexing costs more than a cut."""

    def __init__(self, draws: DistortionDraws):
        self.kind = draws.kind.tolist()
        self.boxes = [[b for b, on in zip(boxes, active, strict=True) if on]
                      for boxes, active in zip(draws.boxes.tolist(), draws.active.tolist(), strict=True)]
        self.pairs = [[p for p, on in zip(pairs, active, strict=True) if on]
                      for pairs, active in zip(draws.pairs.tolist(), draws.pair_active.tolist(), strict=True)]

    def apply(self, view: np.ndarray, i: int) -> None:
        """Image ``i``'s distortion on its (H, W) float view, rendered as the per-image recipe renders it."""
        kind = self.kind[i]
        if kind == CUTOUT:
            zero_boxes(view, self.boxes[i])
        elif kind == OUTPAINT:
            keep_only_boxes(view, self.boxes[i])
        elif kind == SHUFFLE:
            swap_blocks(view, self.pairs[i])


def _as_float(levels: np.ndarray, out: np.ndarray) -> None:
    """uint8 -> float32 / 255 into ``out``: the batched path's conversion, bit for bit."""
    torch.from_numpy(out).copy_(torch.from_numpy(levels)).div_(255.0)


class _ViewPlan:
    """One view's draws for a batch as Python lists (read once), and the batch's output for it."""

    def __init__(self, draws: ViewDraws, distortion: DistortionDraws | None, n: int, size: int):
        self.per_image = list(zip(draws.crops.tolist(), draws.flip.tolist(), draws.brightness.tolist(),
                                  draws.contrast.tolist(), draws.brightness_first.tolist(),
                                  draws.blur_sigma.tolist(), draws.solarize.tolist(), strict=True))
        self.distortions = _Distortions(distortion) if distortion is not None else None
        self.views = torch.empty((n, 1, size, size), dtype=torch.float32)


def render_views(images: torch.Tensor, draws: list[tuple[ViewDraws, DistortionDraws | None]], size: int,
                 interpolation: str, target_flip: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``view1``, ``view2`` (B, 1, size, size) float32 of uint8 (B, H, W) CPU ``images`` and, given
    ``target_flip`` (B,) bool (which targets are flipped), ``target``: view 1's crop as a float, before the rest.

    Image by image, both views in turn, so that the second crop reads a source the first left in cache.
    """
    n = images.shape[0]
    plans = [_ViewPlan(view, distortion, n, size) for view, distortion in draws]
    targets = torch.empty_like(plans[0].views) if target_flip is not None else None
    target_flips = target_flip.tolist() if target_flip is not None else None
    target_out = targets.numpy() if targets is not None else None
    outs = [plan.views.numpy() for plan in plans]
    for i in range(n):
        for index, (plan, out) in enumerate(zip(plans, outs, strict=True)):
            (top, left, h, w), flip, brightness, contrast, brightness_first, sigma, solarize = plan.per_image[i]
            crop = resize_crop_uint8(images[i], (top, left, h, w), size, interpolation).numpy()
            flipped = cv2.flip(crop, 1) if flip else crop
            if index == 0 and target_out is not None:
                _as_float(flipped if target_flips[i] else crop, target_out[i, 0])
            view = out[i, 0]
            tabled_solarize = solarize and not sigma
            if brightness != 1.0 or contrast != 1.0 or tabled_solarize:
                cv2.LUT(flipped, level_table(flipped, brightness, contrast, brightness_first, tabled_solarize),
                        dst=view)
            else:
                _as_float(flipped, view)
            if sigma:
                kernel = gaussian_kernel(sigma * size / REFERENCE_SIZE)
                cv2.sepFilter2D(view, cv2.CV_32F, kernel, kernel, dst=view, borderType=cv2.BORDER_REFLECT_101)
                cv2.min(view, 1.0, dst=view)  # a normalised positive kernel: never below 0, above 1 by rounding
                if solarize:
                    np.copyto(view, 1.0 - view, where=view >= SOLARIZE_THRESHOLD)
            if plan.distortions is not None:
                plan.distortions.apply(view, i)
    out = {f"view{index + 1}": plan.views for index, plan in enumerate(plans)}
    return out if targets is None else {"target": targets, **out}

"""Evaluation-time views of a batch of cached images: resize, then the centre crop or the ten crops.

The benchmark (BenchmarkTransferLearning) validates on Resize(256) + CenterCrop(224) and tests on
Resize(256) + TenCrop(224), averaging the sigmoid scores over the ten crops. Here the same views are cut
from a whole batch at once: one resize of the (N, C, H, W) tensor, then crops that are slices of it, so a
batch of 1024-px images costs one batched resize, not N Python-level transforms. Images stay uint8
throughout, as PIL keeps them in the reference (its Resize rounds to 8 bits before ToTensor).
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

CROPS = ("center", "ten")
VIEWS = {"center": 1, "ten": 10}


def resize_square(images: torch.Tensor, side: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, side, side), bilinear with antialiasing (torchvision's Resize on PIL does both)."""
    if images.shape[-2:] == (side, side):
        return images
    return TF.resize(images, [side, side], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def center_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, S, S) -> (N, 1, C, size, size): the centre crop, as one view per image."""
    return TF.center_crop(images, [size, size]).unsqueeze(1)


def ten_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, S, S) -> (N, 10, C, size, size) in TenCrop's order.

    Views 0-4: top-left, top-right, bottom-left, bottom-right, centre; views 5-9: the same five crops of the
    horizontally flipped image (so view 5 is the mirror of view 1's region, as in torchvision).
    """
    five = TF.five_crop(images, [size, size])
    mirrored = TF.five_crop(TF.horizontal_flip(images), [size, size])
    return torch.stack([*five, *mirrored], dim=1)


def eval_crops(images: torch.Tensor, resize: int, size: int, crops: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, V, C, size, size): resized to ``resize``², then ``crops`` ('center' | 'ten')."""
    if size > resize:
        raise ValueError(f"crops of {size} px do not fit in images resized to {resize} px")
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {CROPS}, got {crops!r}")
    resized = resize_square(images, resize)
    return center_crops(resized, size) if crops == "center" else ten_crops(resized, size)

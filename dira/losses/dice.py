"""Soft Dice loss of the segmentation fine-tuning (SIIM-ACR, Montgomery), as in BenchmarkTransferLearning."""

from __future__ import annotations

import torch


def soft_dice_loss(probabilities: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft Dice of a batch, its pixels pooled over all images (the benchmark's loss, smooth 1).

    Pooling over the batch, rather than averaging per-image Dice, keeps images with an empty mask from
    contributing a loss that ``smooth`` alone decides; ``smooth`` keeps an all-empty batch finite.
    """
    probabilities = probabilities.reshape(-1)
    targets = targets.reshape(-1).to(probabilities.dtype)
    intersection = (probabilities * targets).sum()
    return 1.0 - (2.0 * intersection + smooth) / (probabilities.sum() + targets.sum() + smooth)

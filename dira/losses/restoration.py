"""Restoration loss: pixel-wise L2 between the restored crop and the undistorted one."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def restoration_loss(restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error; ``restored`` is already in [0, 1] (sigmoid of the U-Net logits)."""
    return F.mse_loss(restored, target)

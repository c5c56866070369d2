"""torchvision ResNets as encoders, and the key layout that pre-trained weights are exported in.

Exported encoder weights are a plain torchvision ResNet state dict without ``fc.*``: anyone can load
them with ``torchvision.models.resnet50().load_state_dict(sd, strict=False)`` (only ``fc`` missing).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchvision
from torch import nn

from dira.errors import InputError

BACKBONES = ("resnet18", "resnet34", "resnet50")


def build_resnet(backbone: str, num_classes: int = 1000) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (weights never come from a hub here)."""
    if backbone not in BACKBONES:
        raise InputError(f"unknown backbone '{backbone}' (choose from {', '.join(BACKBONES)})")
    return getattr(torchvision.models, backbone)(weights=None, num_classes=num_classes)


def feature_dim(backbone: str) -> int:
    """Channels of the last stage (the pooled feature the heads see)."""
    return 512 if backbone in ("resnet18", "resnet34") else 2048


def strip_fc(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if not k.startswith("fc.")}


def load_encoder_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load exported encoder weights into a torchvision ResNet; everything but ``fc`` must match exactly."""
    result = model.load_state_dict(strip_fc(state_dict), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise InputError(
            f"{source}: encoder weights do not fit {type(model).__name__} "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )

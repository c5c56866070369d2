"""torchvision ResNets as encoders, and the key layout that pre-trained weights are exported in.

Exported encoder weights are a plain torchvision ResNet state dict without ``fc.*``: anyone can load
them with ``torchvision.models.resnet50().load_state_dict(sd, strict=False)`` (only ``fc`` missing).
The same loader takes torchvision's own ImageNet files (``resnet50-0676ba61.pth``, ...), whose 1000-class
``fc`` it drops, so the supervised ImageNet baseline needs no conversion step.
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


# Blocks per stage and block type of each backbone: how a state dict's layout names its architecture.
LAYOUTS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34", ((3, 4, 6, 3), True): "resnet50"}
# BatchNorm fills a missing counter with 0 (torchvision's older ImageNet files predate it).
OPTIONAL_SUFFIX = ".num_batches_tracked"


def infer_backbone(state_dict: Mapping[str, object]) -> str | None:
    """The backbone whose key layout ``state_dict`` has (None for another network), to say what a file is."""
    blocks = tuple(len({key.split(".")[1] for key in state_dict if key.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    return LAYOUTS.get((blocks, "layer1.0.conv3.weight" in state_dict))


def check_state_dict(state_dict: object, source: str) -> Mapping[str, torch.Tensor]:
    """A flat mapping of names to tensors, or an error saying what the file holds instead."""
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise InputError(f"{source}: expected a ResNet state dict, got {type(state_dict).__name__}"
                         + (" (empty)" if isinstance(state_dict, Mapping) else ""))
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{source}: not a flat state dict: '{key}' holds {type(value).__name__}, not a "
                             "tensor (a training checkpoint? pass the exported weights instead)")
    return state_dict


def load_encoder_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load encoder weights into a torchvision ResNet: everything but ``fc`` must match in name and shape.

    Takes an exported ``encoder.pt`` or a torchvision ImageNet file; a U-Net, another backbone or any other
    network is refused with the file's name, what it looks like and the first keys that do not fit.
    """
    state = strip_fc(check_state_dict(state_dict, source))
    own = {key: value for key, value in model.state_dict().items() if not key.startswith("fc.")}
    missing = [key for key in own if key not in state and not key.endswith(OPTIONAL_SUFFIX)]
    unexpected = [key for key in state if key not in own]
    reshaped = [f"{key} {tuple(state[key].shape)} (needs {tuple(own[key].shape)})"
                for key in state if key in own and state[key].shape != own[key].shape]
    if missing or unexpected or reshaped:
        raise InputError(f"{source}: encoder weights do not fit the {infer_backbone(own) or 'configured'} "
                         f"encoder of model.backbone; the file {_describe(state)} (missing {_first(missing)}, "
                         f"unexpected {_first(unexpected)}, other shapes {_first(reshaped)})")
    model.load_state_dict(state, strict=False)


def _describe(state: Mapping[str, torch.Tensor]) -> str:
    if any(key.startswith(("encoder.", "decoder.")) for key in state):
        return "holds U-Net keys (encoder.*, decoder.*): pass the encoder.pt exported beside it"
    backbone = infer_backbone(state)
    return f"looks like a {backbone}" if backbone else "is no torchvision ResNet of this package's backbones"


def _first(keys: list[str], count: int = 3) -> list[str] | str:
    return keys if len(keys) <= count else f"{keys[:count]} and {len(keys) - count} more"

"""The segmentation model of fine-tuning: our U-Net, started from random, an encoder, or a whole U-Net.

DiRA's point for segmentation is that its restoration branch pre-trains the decoder as well, so a
``unet.pt`` (encoder, decoder and head) is loaded whole and strictly. An ``encoder.pt`` (a torchvision
ResNet state dict, as every method exports) starts only the encoder, the decoder staying random, which
is how encoder-only pre-training and the supervised baselines transfer to segmentation (a torchvision
ImageNet file counts as an encoder state dict: its ``fc`` is dropped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from dira.errors import InputError
from dira.io import load_torch
from dira.models.resnet import load_encoder_weights
from dira.models.unet import UNet

UNET_PREFIXES = ("encoder.", "decoder.", "segmentation_head.")


def build_segmentation_model(backbone: str, decoder_channels: Sequence[int],
                             weights: Path | None) -> tuple[UNet, str]:
    """The U-Net and what was loaded into it: 'random', 'unet' (encoder and decoder) or 'encoder'."""
    model = UNet(backbone, decoder_channels)
    if weights is None:
        return model, "random"
    state = load_torch(weights)
    if not isinstance(state, Mapping) or not state:
        raise InputError(f"{weights}: expected a U-Net or ResNet state dict, got {type(state).__name__}")
    return model, load_segmentation_weights(model, state, source=str(weights))


def load_segmentation_weights(model: UNet, state: Mapping[str, torch.Tensor], source: str) -> str:
    """Load a whole U-Net state dict strictly, or a torchvision encoder state dict into the encoder."""
    if all(key.startswith(UNET_PREFIXES) for key in state):
        if not any(key.startswith("decoder.") for key in state):
            raise InputError(f"{source}: U-Net keys without a decoder; pass the encoder.pt export instead")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise InputError(f"{source}: U-Net weights do not fit the configured "
                             f"{model.backbone} U-Net ({_first_line(err)})") from err
        return "unet"
    if any(key.startswith(UNET_PREFIXES) for key in state) or "conv1.weight" not in state:
        raise InputError(f"{source}: neither a U-Net state dict ({'*, '.join(UNET_PREFIXES)}*) nor a "
                         f"torchvision ResNet encoder state dict; first keys: {list(state)[:4]}")
    load_encoder_weights(model.encoder, state, source=source)
    return "encoder"


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:3])

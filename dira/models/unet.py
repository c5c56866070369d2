"""2D U-Net around a torchvision ResNet encoder, shared by pre-training and segmentation fine-tuning.

Parameter names follow the segmentation_models_pytorch ``Unet`` layout that DiRA's released weights use
(``encoder.*`` = torchvision ResNet keys, ``decoder.blocks.{i}.conv{1,2}.{0,1}``, ``segmentation_head.0``),
so our exports and the official checkpoints are interchangeable. The module itself is written here
rather than taken from smp to keep the encoder a plain torchvision ResNet (exports load strictly into
``torchvision.models.resnet*``) and to avoid pulling timm and hub code into an offline pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dira.models.resnet import build_resnet

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without ``avgpool``/``fc`` that returns the five feature maps a U-Net needs.

    Strides of the returned maps: 2 (stem), 4, 8, 16, 32. Attribute names are torchvision's, so
    ``state_dict()`` is a ResNet state dict minus ``fc``.
    """

    def __init__(self, backbone: str):
        super().__init__()
        resnet = build_resnet(backbone)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (getattr(resnet, n) for n in RESNET_STAGES)
        self.out_channels = (resnet.bn1.num_features, *(_stage_width(getattr(self, n)) for n in RESNET_STAGES))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:  # grey radiographs enter the RGB stem of torchvision weights unchanged
            x = x.expand(-1, 3, -1, -1)
        stem = self.relu(self.bn1(self.conv1(x)))
        feats = [stem]
        x = self.maxpool(stem)
        for name in RESNET_STAGES:
            x = getattr(self, name)(x)
            feats.append(x)
        return feats


def _stage_width(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class DecoderBlock(nn.Module):
    def __init__(self, in_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(in_ch + skip_ch, out_ch)
        self.conv2 = _conv_bn_relu(out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """Five up-sampling blocks; the first four fuse the encoder's skip connections, the last restores full size."""

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int]):
        super().__init__()
        if len(decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs 5 entries, got {list(decoder_channels)}")
        skips = [*reversed(encoder_channels[:-1]), 0]  # stride 16, 8, 4, 2, then none
        ins = [encoder_channels[-1], *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels, strict=True)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = [*reversed(features[:-1]), None]
        for block, skip in zip(self.blocks, skips, strict=True):
            x = block(x, skip)
        return x


class UNet(nn.Module):
    """ResNet U-Net; ``forward`` returns logits (the restoration and the segmentation losses apply sigmoid)."""

    def __init__(self, backbone: str, decoder_channels: Sequence[int], out_channels: int = 1):
        """``backbone`` and ``decoder_channels`` are the ``model`` section's, required: the schema holds their
        defaults. ``out_channels`` is structural (one grey restoration, or one mask)."""
        super().__init__()
        self.backbone = backbone
        self.encoder = ResNetEncoder(backbone)
        self.decoder = UNetDecoder(self.encoder.out_channels, decoder_channels)
        self.segmentation_head = nn.Sequential(
            nn.Conv2d(decoder_channels[-1], out_channels, kernel_size=3, padding=1)
        )

    def decode(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.segmentation_head(self.decoder(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoder(x))

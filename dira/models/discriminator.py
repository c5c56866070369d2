"""PatchGAN discriminator that tells the undistorted crop from the U-Net's restoration.

Layout of the DiRA reference: 3×3 convolutions with 64/128/256/512 channels (strides 2, 2, 2, 1),
LeakyReLU(0.2), InstanceNorm from the second block, a final 3×3 convolution to one channel and no
sigmoid (the LSGAN loss works on raw scores). A 224 px input gives a 28×28 map of patch scores.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(in_ch: int, out_ch: int, stride: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1)]
    if norm:
        layers.append(nn.InstanceNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        strides = (2, 2, 2, 1)
        layers: list[nn.Module] = []
        prev = in_channels
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            layers += _block(prev, width, stride, norm=i > 0)
            prev = width
        layers.append(nn.Conv2d(prev, 1, kernel_size=3, padding=1))
        self.model = nn.Sequential(*layers)
        self.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _init_normal(module: nn.Module) -> None:
    # N(0, 0.02) convolution weights, the usual GAN initialisation the reference uses.
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

"""PatchGAN discriminator that tells the undistorted input from the U-Net's restoration, in 2D or 3D.

Layout of the DiRA reference: 3×3 convolutions with 64/128/256/512 channels (strides 2, 2, 2, 1),
LeakyReLU(0.2), InstanceNorm from the second block, a final 3×3 convolution to one channel and no
sigmoid (the LSGAN loss works on raw scores). A 224 px input gives a 28×28 map of patch scores.
The 3D version (DiRA_TransVW: "four conv layers with 3×3×3 kernels") is the same with Conv3d and
InstanceNorm3d; a 64×64×32 cube gives an 8×8×4 map.
"""

from __future__ import annotations

import torch
from torch import nn

REFERENCE_WIDTHS = (64, 128, 256, 512)
_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _block(in_ch: int, out_ch: int, stride: int, norm: bool, dims: int) -> list[nn.Module]:
    layers: list[nn.Module] = [_CONV[dims](in_ch, out_ch, kernel_size=3, stride=stride, padding=1)]
    if norm:
        layers.append(_NORM[dims](out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = REFERENCE_WIDTHS, dims: int = 2):
        """``widths`` and ``dims`` are structural: the 3D U-Net's demo width scales them down with its own."""
        super().__init__()
        if dims not in _CONV:
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        strides = (2, 2, 2, 1)
        layers: list[nn.Module] = []
        prev = in_channels
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            layers += _block(prev, width, stride, norm=i > 0, dims=dims)
            prev = width
        layers.append(_CONV[dims](prev, 1, kernel_size=3, padding=1))
        self.model = nn.Sequential(*layers)
        self.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _init_normal(module: nn.Module) -> None:
    # N(0, 0.02) convolution weights, the usual GAN initialisation the reference uses.
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

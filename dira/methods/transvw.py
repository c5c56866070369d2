"""TransVW's discrimination: classify each visual-word cube by its self-discovered pseudo label (appendix, eq. 9).

TransVW (Haghighi et al., TMI 2021) restores Models Genesis-distorted cubes and classifies them by the visual
word they were cut from, so it is restorative on its own: its 'base' stage already trains the decoder
(``restores_in_base``), with the reference's weights λ_rec 1, λ_cls 0.01. Inside DiRA its encoder f_θ and head
h_θ are shared by both branches (f_ξ = f_θ, no momentum copy), and an adversary is added.

The head follows the reference's YNet3D: on the deepest encoder features, Conv3d 3x3x3 doubling the width, batch
norm, ReLU, global average pooling and a linear layer to the classes; the loss is the cross-entropy of eq. 9.
The number of classes is a property of the discovered data, not a setting: the trainer reads it from the cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dira.methods.base import DiscriminativeMethod, DiscriminativeOutput, global_pool


class VisualWordHead(nn.Module):
    def __init__(self, feature_dim: int, classes: int):
        super().__init__()
        self.conv = nn.Conv3d(feature_dim, 2 * feature_dim, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm3d(2 * feature_dim)
        self.fc = nn.Linear(2 * feature_dim, classes)

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.fc(global_pool(F.relu(self.bn(self.conv(deepest)))))


class TransVW(DiscriminativeMethod):
    name = "transvw"
    inputs = ("view", "label")
    views = "visual_words"
    restores_in_base = True

    def __init__(self, encoder: nn.Module, feature_dim: int, classes: int):
        """``classes`` comes from the visual-word cache (structural); TransVW has no tunable settings here."""
        super().__init__()
        if classes < 2:
            raise ValueError(f"TransVW needs at least 2 visual-word classes, got {classes}")
        self.head = VisualWordHead(feature_dim, classes)

    def forward(self, encoder: nn.Module, view: torch.Tensor, label: torch.Tensor) -> DiscriminativeOutput:
        features = encoder(view)
        loss = F.cross_entropy(self.head(features[-1]).float(), label)
        return DiscriminativeOutput(loss, features)

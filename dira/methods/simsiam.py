"""SimSiam: a siamese encoder whose predictor chases the other view's stop-gradient projection (appendix eq. 6–7)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from dira.losses import simsiam_loss
from dira.methods.base import DiscriminativeMethod, DiscriminativeOutput, global_pool
from dira.models.heads import simsiam_predictor, simsiam_projector
from dira.models.unet import ResNetEncoder


class SimSiam(DiscriminativeMethod):
    """Both views go through the one online encoder and projector; no momentum copy, no negatives."""

    name = "simsiam"
    sync_batchnorm = True  # as the official code, every batch norm (heads included) sees the global batch

    def __init__(self, encoder: ResNetEncoder, feature_dim: int, *, proj_dim: int, pred_dim: int,
                 fix_predictor_lr: bool):
        """Settings are ``pretrain.simsiam`` of the config, required: the schema alone holds their defaults."""
        super().__init__()
        self.fix_predictor_lr = fix_predictor_lr
        self.projector = simsiam_projector(feature_dim, proj_dim)
        self.predictor = simsiam_predictor(proj_dim, pred_dim)
        zero_init_residual(encoder)

    def forward(self, encoder: ResNetEncoder, view1: torch.Tensor, view2: torch.Tensor) -> DiscriminativeOutput:
        # Two passes, not one over the concatenated views: each view's batch norm sees only its own batch,
        # as in the official code.
        features = encoder(view1)
        z1 = self.projector(global_pool(features[-1]))
        z2 = self.projector(global_pool(encoder(view2)[-1]))
        loss = simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)
        return DiscriminativeOutput(loss=loss, features=features)

    def fixed_lr_parameters(self) -> list[nn.Parameter]:
        # SimSiam's --fix-pred-lr: the predictor adapts to the latest representation faster than a decayed lr allows.
        return list(self.predictor.parameters()) if self.fix_predictor_lr else []


def zero_init_residual(encoder: nn.Module) -> None:
    """Zero the last batch-norm scale of every residual block, so each block starts as its shortcut.

    torchvision's ``zero_init_residual=True``, which SimSiam's recipe uses (Goyal et al., 2017): the network
    starts shallower and trains more stably.
    """
    for module in encoder.modules():
        if isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)
        elif isinstance(module, BasicBlock):
            nn.init.zeros_(module.bn2.weight)

"""Barlow Twins: make the cross-correlation of two views' embeddings the identity (appendix eq. 8)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dira.losses import barlow_twins_loss, cross_correlation
from dira.methods.base import DiscriminativeMethod, DiscriminativeOutput, global_pool
from dira.models.heads import barlow_twins_projector
from dira.models.unet import ResNetEncoder
from dira.runtime import distributed


class BarlowTwins(DiscriminativeMethod):
    """Both views go through the one online encoder and projector; the loss needs neither negatives nor a target net."""

    name = "barlowtwins"
    sync_batchnorm = True  # the official code trains with SyncBN: C's standardisation spans the global batch

    def __init__(self, encoder: ResNetEncoder, feature_dim: int, *, proj_dims: Sequence[int], lambd: float):
        """Settings are ``pretrain.barlowtwins`` of the config, required: the schema alone holds their defaults."""
        super().__init__()
        self.lambd = lambd
        self.projector = barlow_twins_projector(feature_dim, proj_dims)
        # BN without affine turns C into correlations. Batch statistics in validation too (no running ones), so
        # the validation loss is the training loss on other images; this also leaves the method without state.
        self.standardise = nn.BatchNorm1d(proj_dims[-1], affine=False, track_running_stats=False)

    def forward(self, encoder: ResNetEncoder, view1: torch.Tensor, view2: torch.Tensor) -> DiscriminativeOutput:
        features = encoder(view1)
        z1 = self.projector(global_pool(features[-1]))
        z2 = self.projector(global_pool(encoder(view2)[-1]))
        # C sums N products per entry and the loss sums d² squares: both in float32 even under autocast.
        with torch.autocast(device_type=z1.device.type, enabled=False):
            c = cross_correlation(self.standardise(z1.float()), self.standardise(z2.float()))
            loss = barlow_twins_loss(self._reduce(c), self.lambd)
        return DiscriminativeOutput(loss=loss, features=features)

    def _reduce(self, c: torch.Tensor) -> torch.Tensor:
        """Where C is averaged over processes under data parallelism; identity in one process.

        With equal per-process batches and ``standardise`` converted to a global batch norm, the average of
        the per-process C is exactly the C of the whole batch. The sum is differentiable, so every process
        back-propagates the loss of the whole batch, as one process would (validation stays local).
        """
        if not (self.training and distributed.active()):
            return c
        return distributed.all_reduce_sum(c) / distributed.world_size()

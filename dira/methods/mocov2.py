"""MoCo-v2: InfoNCE between a query encoder and its momentum copy, with a queue of past keys as negatives."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from dira.losses import infonce_loss
from dira.methods.base import DiscriminativeMethod, DiscriminativeOutput, forward_in_groups, global_pool
from dira.models.heads import mlp_head
from dira.models.unet import ResNetEncoder


class MoCoV2(DiscriminativeMethod):
    name = "mocov2"

    def __init__(self, encoder: ResNetEncoder, feature_dim: int, queue_size: int = 65536,
                 momentum: float = 0.999, temperature: float = 0.2, hidden_dim: int = 2048,
                 out_dim: int = 128, bn_splits: int = 1):
        super().__init__()
        self.momentum, self.temperature, self.bn_splits = momentum, temperature, bn_splits
        self.head = mlp_head(feature_dim, hidden_dim, out_dim)
        # The key side needs only encoder + head; the reference's momentum copy of the whole U-Net would
        # spend an EMA on a decoder that never runs.
        self.key_encoder = copy.deepcopy(encoder)
        self.key_head = copy.deepcopy(self.head)
        for p in (*self.key_encoder.parameters(), *self.key_head.parameters()):
            p.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(out_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(self, encoder: ResNetEncoder, view1: torch.Tensor, view2: torch.Tensor) -> DiscriminativeOutput:
        # Batch-norm groups only matter with batch statistics; evaluation uses running statistics.
        groups = self.bn_splits if self.training else 1
        features = forward_in_groups(encoder, view1, groups)
        query = F.normalize(self.head(global_pool(features[-1])), dim=1)
        with torch.no_grad():
            if self.training:
                self._momentum_update(encoder)
            key = self._keys(view2, groups)
        loss = infonce_loss(query, key, self.queue.clone(), self.temperature)
        if self.training:
            self._enqueue(key)
        return DiscriminativeOutput(loss=loss, features=features)

    def _keys(self, images: torch.Tensor, groups: int) -> torch.Tensor:
        # Shuffle-BN: spread each batch-norm group's images over the other groups for the keys, so a
        # query and its positive key never share batch statistics (a shortcut MoCo guards against).
        if groups > 1:
            order = torch.randperm(images.shape[0], device=images.device)
            images = images[order]
        features = forward_in_groups(self.key_encoder, images, groups)
        key = F.normalize(self.key_head(global_pool(features[-1])), dim=1)
        if groups > 1:
            key = key[torch.argsort(order)]
        return key

    def _momentum_update(self, encoder: ResNetEncoder) -> None:
        online = [*encoder.parameters(), *self.head.parameters()]
        target = [*self.key_encoder.parameters(), *self.key_head.parameters()]
        torch._foreach_lerp_(target, [p.detach() for p in online], 1.0 - self.momentum)

    def _enqueue(self, key: torch.Tensor) -> None:
        size = self.queue.shape[1]
        slots = (self.queue_ptr + torch.arange(key.shape[0], device=key.device)) % size
        self.queue[:, slots] = key.T.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + key.shape[0]) % size)

"""MoCo-v2: InfoNCE between a query encoder and its momentum copy, with a queue of past keys as negatives."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from dira.losses import infonce_loss
from dira.methods.base import DiscriminativeMethod, DiscriminativeOutput, forward_in_groups, global_pool
from dira.models.heads import mlp_head
from dira.models.unet import ResNetEncoder
from dira.runtime import distributed
from dira.seeding import derive_seed


class MoCoV2(DiscriminativeMethod):
    name = "mocov2"

    def __init__(self, encoder: ResNetEncoder, feature_dim: int, *, queue_size: int, momentum: float,
                 temperature: float, hidden_dim: int, out_dim: int, bn_splits: int):
        """Settings are ``pretrain.mocov2`` of the config, required: the schema alone holds their defaults."""
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
        self.register_buffer("shuffle_step", torch.zeros((), dtype=torch.long))

    @property
    def bn_groups(self) -> int:
        # Emulated groups in one process; under torchrun every process is one group already.
        return self.bn_splits if self.training and not distributed.active() else 1

    def forward(self, encoder: ResNetEncoder, view1: torch.Tensor, view2: torch.Tensor) -> DiscriminativeOutput:
        features = forward_in_groups(encoder, view1, self.bn_groups)
        query = F.normalize(self.head(global_pool(features[-1])), dim=1)
        with torch.no_grad():
            if self.training:
                self._momentum_update(encoder)
            keys = self._keys(view2)  # of the whole (global) batch, in batch order
        local_keys = keys.chunk(distributed.world_size())[distributed.rank()] if self.training else keys
        loss = infonce_loss(query, local_keys, self.queue.clone(), self.temperature)
        if self.training:
            self._enqueue(keys)
        return DiscriminativeOutput(loss=loss, features=features)

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        """Key embeddings with shuffle-BN: each batch-norm group (process, or emulated group) computes keys
        of images from other groups, so a query and its positive key never share batch statistics."""
        if not self.training:
            return self._embed_keys(images)
        images = distributed.gather(images)
        groups = distributed.world_size() if distributed.active() else self.bn_splits
        if groups == 1:
            return self._embed_keys(images)
        order = self._shuffle_order(images.shape[0]).to(images.device)
        shuffled = images[order]
        if distributed.active():
            keys = distributed.gather(self._embed_keys(shuffled.chunk(groups)[distributed.rank()]))
        else:
            keys = torch.cat([self._embed_keys(chunk) for chunk in shuffled.chunk(groups)])
        return keys[torch.argsort(order)]

    def _embed_keys(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_head(global_pool(self.key_encoder(images)[-1])), dim=1)

    def _shuffle_order(self, size: int) -> torch.Tensor:
        # Drawn from a counter in the state, not the global RNG: every process draws the same
        # permutation without a broadcast, and a resumed run draws the ones it would have drawn.
        generator = torch.Generator().manual_seed(derive_seed("moco-shuffle-bn", int(self.shuffle_step)))
        self.shuffle_step += 1
        return torch.randperm(size, generator=generator)

    def _momentum_update(self, encoder: ResNetEncoder) -> None:
        online = [*encoder.parameters(), *self.head.parameters()]
        target = [*self.key_encoder.parameters(), *self.key_head.parameters()]
        torch._foreach_lerp_(target, [p.detach() for p in online], 1.0 - self.momentum)

    def _enqueue(self, key: torch.Tensor) -> None:
        size = self.queue.shape[1]
        slots = (self.queue_ptr + torch.arange(key.shape[0], device=key.device)) % size
        self.queue[:, slots] = key.T.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + key.shape[0]) % size)

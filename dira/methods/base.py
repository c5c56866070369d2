"""The interface every discriminative method implements, so that DiRA can wrap any of them.

A method owns only what is its own (heads, momentum copies, queues). The online encoder belongs to the
U-Net and is passed in: the restoration branch reuses the very feature maps the method computed for
the restored input, so DiRA adds a decoder pass but never a second encoder pass.

A method declares what it reads and who makes it: ``inputs`` names the batch entries its ``forward`` takes
(two augmented views for the 2D methods; TransVW's distorted cube and its visual-word label), and ``views``
names the data pipeline that builds such batches (the trainer maps the name to a dataset; methods do not
import the data layer). The restoration target always comes as the batch's ``target``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from dira.models.unet import ResNetEncoder


@dataclass
class DiscriminativeOutput:
    loss: torch.Tensor
    features: list[torch.Tensor]
    """Online encoder feature maps of view 1, shallowest first (the U-Net decoder's input)."""


class DiscriminativeMethod(nn.Module, ABC):
    name: str = ""
    inputs: tuple[str, ...] = ("view1", "view2")
    """Batch entries ``forward`` takes after the encoder, in order."""
    views: str = "two_views"
    """The data pipeline that makes its batches: ``two_views`` (2D) or ``visual_words`` (TransVW)."""
    restores_in_base: bool = False
    """The method restores on its own (TransVW): its 'base' stage already trains the decoder."""

    @abstractmethod
    def forward(self, encoder: ResNetEncoder, view1: torch.Tensor, view2: torch.Tensor) -> DiscriminativeOutput:
        """Discrimination loss of a batch of view pairs.

        In training mode a method may update its own state (momentum encoder, queue); in eval mode
        (validation) it must not, so that validating never changes what training sees next.
        """

    def discriminate(self, encoder: nn.Module, batch: Mapping[str, torch.Tensor]) -> DiscriminativeOutput:
        """The loss of one batch: the method's ``inputs`` taken from it by name."""
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise KeyError(f"{self.name}: the batch lacks {missing} (it has {sorted(batch)})")
        return self(encoder, *(batch[k] for k in self.inputs))

    @property
    def bn_groups(self) -> int:
        """Batch-norm groups of one process's batch (MoCo's emulated shuffle-BN); 1 for most methods."""
        return 1

    # Methods whose batch norm must see the whole batch across processes (SimSiam, Barlow Twins) set
    # this; the trainer then converts every batch norm of the model under torchrun.
    sync_batchnorm: bool = False

    def fixed_lr_parameters(self) -> list[nn.Parameter]:
        """Parameters the learning-rate schedule must leave at their base rate (SimSiam's predictor)."""
        return []


def global_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """Mean over every spatial axis: (N, C, H, W) or (N, C, D, H, W) -> (N, C)."""
    return feature_map.mean(dim=tuple(range(2, feature_map.dim())))


def forward_in_groups(encoder: nn.Module, images: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """Run the encoder on ``groups`` equal slices so batch norm sees per-slice statistics, as on that many GPUs."""
    if groups == 1:
        return encoder(images)
    if images.shape[0] % groups:
        raise ValueError(f"batch of {images.shape[0]} cannot be split into {groups} batch-norm groups")
    per_group = [encoder(chunk) for chunk in images.chunk(groups)]
    return [torch.cat(level) for level in zip(*per_group, strict=True)]

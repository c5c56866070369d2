"""DiRA: a discriminative method (Di) plus restoration (R) plus an adversary (A) around one U-Net.

The joint objective is λ_dis·L_dis + λ_res·L_res + λ_adv·L_adv. Training runs in stages (appendix C.1):
discrimination alone (the ``base`` model), then a warm-up with restoration, then all three terms.
``STAGES`` names which terms each stage switches on; the λ of a stage are set by the trainer
(``weights``), since TransVW's own 'base' stage weighs its terms otherwise than DiRA's stages do.

The same class holds the 2D U-Net (ResNet encoder, 2D PatchGAN) and the 3D one (Models Genesis' U-Net,
3D PatchGAN): a method's dimensionality (the registry's) picks which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dira.losses import discriminator_loss, generator_adversarial_loss, restoration_loss
from dira.methods.base import DiscriminativeMethod
from dira.models.discriminator import PatchDiscriminator
from dira.models.unet import UNet


@dataclass(frozen=True)
class Stage:
    name: str
    restoration: bool
    adversarial: bool


STAGES: dict[str, Stage] = {
    "di": Stage("di", restoration=False, adversarial=False),
    "dir": Stage("dir", restoration=True, adversarial=False),
    "dira": Stage("dira", restoration=True, adversarial=True),
}


@dataclass
class GeneratorLosses:
    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    """Unweighted terms: ``dis``, and ``res`` / ``adv`` when the stage has them."""
    restored: torch.Tensor | None
    """The restored view 1 in [0, 1], which the discriminator's step needs."""


@dataclass(frozen=True)
class LossWeights:
    """The λ of each term, from ``pretrain.loss_weights``; no defaults, the schema holds the paper's."""

    discrimination: float
    restoration: float
    adversarial: float


class DiRA(nn.Module):
    """Holds the U-Net, the discriminative method and (for adversarial stages) the discriminator.

    Its ``state_dict`` is the complete set of weights of a pre-training run: ``unet.*`` (exported for
    fine-tuning), ``method.*`` (heads, momentum encoder, queue) and ``discriminator.*``.
    """

    def __init__(self, unet: UNet, method: DiscriminativeMethod, discriminator: PatchDiscriminator | None,
                 weights: LossWeights, adversarial_loss: str):
        super().__init__()
        self.unet, self.method, self.discriminator = unet, method, discriminator
        self.weights, self.adversarial_loss = weights, adversarial_loss

    def generator_losses(self, stage: Stage, batch: Mapping[str, torch.Tensor]) -> GeneratorLosses:
        """Loss of everything but the discriminator: the weighted sum of the stage's terms.

        ``batch`` holds the method's ``inputs`` and, in restoring stages, the restoration ``target``.
        """
        out = self.method.discriminate(self.unet.encoder, batch)
        target = batch.get("target")
        terms = {"dis": out.loss}
        total = self.weights.discrimination * out.loss
        restored = None
        if stage.restoration:
            restored = torch.sigmoid(self._decode(out.features))
            terms["res"] = restoration_loss(restored, target)
            total = total + self.weights.restoration * terms["res"]
        if stage.adversarial:
            terms["adv"] = generator_adversarial_loss(self.discriminator(restored), self.adversarial_loss)
            total = total + self.weights.adversarial * terms["adv"]
        return GeneratorLosses(total, terms, restored)

    def _decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        # The decoder's batch norm sees the same groups as the encoder's (MoCo's emulated GPUs).
        groups = self.method.bn_groups
        if groups == 1:
            return self.unet.decode(features)
        chunks = zip(*(f.chunk(groups) for f in features), strict=True)
        return torch.cat([self.unet.decode(list(chunk)) for chunk in chunks])

    def discriminator_loss(self, target: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(self.discriminator(target), self.discriminator(restored.detach()),
                                  self.adversarial_loss)

    def generator_modules(self) -> list[nn.Module]:
        """What the main optimiser trains: the U-Net and the method's own heads (not the discriminator)."""
        return [self.unet, self.method]

    def generator_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.generator_modules() for p in m.parameters() if p.requires_grad]


def build_dira(method: str, with_discriminator: bool, model_cfg: dict[str, Any],
               pretrain_cfg: dict[str, Any], structure: Mapping[str, Any] | None = None) -> DiRA:
    """Assemble a pre-training model from the ``model`` (2D) or ``model3d`` (3D) and ``pretrain`` sections.

    ``structure`` holds what the data fix rather than the config (TransVW's number of visual-word classes).
    The λ set here are the 2D methods' (``pretrain.loss_weights``) or DiRA_TransVW's; the trainer sets each
    stage's own.
    """
    from dira.methods import build_method
    from dira.registry import METHODS

    three_d = METHODS[method].dims == 3
    if three_d:
        from dira.models.unet3d import UNet3D

        unet = UNet3D(1, 1, base_width=model_cfg["base_width"], batch_stats_in_eval=model_cfg["batch_stats_in_eval"])
        features, weights = unet.widths[-1][1], pretrain_cfg[method]["dira_loss_weights"]
    else:
        from dira.models.resnet import feature_dim

        unet = UNet(model_cfg["backbone"], model_cfg["decoder_channels"])
        features, weights = feature_dim(model_cfg["backbone"]), pretrain_cfg["loss_weights"]
    discriminative = build_method(method, unet.encoder, features, pretrain_cfg[method], structure or {})
    # Built last and only when needed: its random initialisation must not shift the method's (same seed, same heads).
    discriminator = None
    if with_discriminator:
        discriminator = (PatchDiscriminator(widths=tuple(2 * w for w, _ in unet.widths), dims=3) if three_d
                         else PatchDiscriminator())
    return DiRA(unet, discriminative, discriminator, LossWeights(**weights), pretrain_cfg["adversarial_loss"])

"""Losses as small pure functions of tensors: each is tested against an independent computation."""

from dira.losses.adversarial import discriminator_loss, generator_adversarial_loss
from dira.losses.contrastive import infonce_logits, infonce_loss
from dira.losses.restoration import restoration_loss

__all__ = [
    "discriminator_loss",
    "generator_adversarial_loss",
    "infonce_logits",
    "infonce_loss",
    "restoration_loss",
]

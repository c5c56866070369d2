"""Losses as small pure functions of tensors: each is tested against an independent computation."""

from dira.losses.adversarial import discriminator_loss, generator_adversarial_loss
from dira.losses.contrastive import infonce_logits, infonce_loss
from dira.losses.dice import soft_dice_loss
from dira.losses.redundancy import barlow_twins_loss, cross_correlation
from dira.losses.restoration import restoration_loss
from dira.losses.similarity import negative_cosine, simsiam_loss

__all__ = [
    "barlow_twins_loss",
    "cross_correlation",
    "discriminator_loss",
    "generator_adversarial_loss",
    "infonce_logits",
    "infonce_loss",
    "negative_cosine",
    "restoration_loss",
    "simsiam_loss",
    "soft_dice_loss",
]

"""Adversarial losses of DiRA's discriminator D and of the restoring generator.

Two forms, chosen by ``pretrain.adversarial_loss``:

- ``lsgan`` (the reference code): least squares against 1 (real) and 0 (fake) on D's raw patch scores.
- ``bce``: the paper's log-likelihood form, as binary cross-entropy on the same scores.

The generator term is the non-saturating one in both cases: push D(restored) towards "real".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ADVERSARIAL_LOSSES = ("lsgan", "bce")


def _against(scores: torch.Tensor, label: float, kind: str) -> torch.Tensor:
    target = torch.full_like(scores, label)
    if kind == "lsgan":
        return F.mse_loss(scores, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(scores, target)
    raise ValueError(f"unknown adversarial loss '{kind}' (choose from {', '.join(ADVERSARIAL_LOSSES)})")


def generator_adversarial_loss(fake_scores: torch.Tensor, kind: str) -> torch.Tensor:
    return _against(fake_scores, 1.0, kind)


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, kind: str) -> torch.Tensor:
    """½ [loss(D(real), 1) + loss(D(fake), 0)]; ``fake_scores`` must come from a detached restoration."""
    return 0.5 * (_against(real_scores, 1.0, kind) + _against(fake_scores, 0.0, kind))

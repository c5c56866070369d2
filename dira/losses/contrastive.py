"""InfoNCE with a queue of negatives (MoCo): L = -log exp(q·k+/τ) / (exp(q·k+/τ) + Σ_n exp(q·k_n/τ))."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce_logits(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """Logits (B, 1 + K): column 0 is the positive pair, the rest the queue's negatives.

    ``query`` and ``key`` are (B, D) and L2-normalised; ``queue`` is (D, K), also normalised.
    """
    positive = (query * key).sum(dim=1, keepdim=True)
    negatives = query @ queue
    return torch.cat([positive, negatives], dim=1) / temperature


def infonce_loss(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    logits = infonce_logits(query, key, queue, temperature)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)

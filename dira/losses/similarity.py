"""SimSiam's symmetrised negative cosine similarity with a stop-gradient on the target (appendix eq. 6–7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) of eq. 6, averaged over the batch: −cos(p, z) with z a constant target.

    The stop-gradient is what keeps SimSiam from collapsing without negatives: the target side never
    moves to meet the prediction, only the prediction moves to meet it.
    """
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ½ D(p1, stopgrad z2) + ½ D(p2, stopgrad z1), so each view serves once as the target."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))

"""Barlow Twins' redundancy reduction: drive the cross-correlation of two views' embeddings to identity (eq. 8).

The cross-correlation and the loss are separate functions because under data parallelism C must be
averaged over processes between the two, exactly once.
"""

from __future__ import annotations

import torch


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """C = z1ᵀ z2 / N: the (d, d) correlation of every dimension of view 1 with every one of view 2.

    The embeddings must already be batch-normalised without affine (each dimension standardised over the
    batch, biased variance, as BatchNorm1d in training), which makes C a matrix of correlations. The
    normalisation is left to the caller, a batch-norm module, so that data parallelism can make its
    statistics span the whole batch.
    """
    return z1.T @ z2 / z1.shape[0]


def barlow_twins_loss(c: torch.Tensor, lambd: float) -> torch.Tensor:
    """Eq. 8: Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij².

    The first term makes the embedding invariant to the distortions, the second decorrelates its dimensions
    so that they do not all carry the same information.
    """
    diagonal = c.diagonal()
    invariance = (1 - diagonal).pow(2).sum()
    redundancy = c.pow(2).sum() - diagonal.pow(2).sum()
    return invariance + lambd * redundancy

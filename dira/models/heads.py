"""Projection and prediction heads of the discriminative methods (MLPs on the pooled encoder feature)."""

from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """MoCo-v2's head: Linear → ReLU → Linear (indices 0 and 2 carry weights, as in the reference's ``fc``)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))

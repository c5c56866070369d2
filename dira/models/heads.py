"""Projection and prediction heads of the discriminative methods (MLPs on the pooled encoder feature)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """MoCo-v2's head: Linear → ReLU → Linear (indices 0 and 2 carry weights, as in the reference's ``fc``)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


def _linear_bn_relu(in_dim: int, out_dim: int) -> list[nn.Module]:
    # No bias: the batch norm right after it subtracts any constant shift.
    return [nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]


def simsiam_projector(in_dim: int, dim: int) -> nn.Sequential:
    """SimSiam's 3-layer projector: [Linear-BN-ReLU] × 2, then Linear-BN(affine=False); ``dim`` wide throughout."""
    head = nn.Sequential(*_linear_bn_relu(in_dim, dim), *_linear_bn_relu(dim, dim),
                         nn.Linear(dim, dim), nn.BatchNorm1d(dim, affine=False))
    # The output batch norm subtracts the batch mean, so this bias cancels exactly and its gradient is zero.
    # The official code keeps it (it reuses the ResNet's fc) but freezes it; so do we, which also keeps weight
    # decay from shrinking a parameter that has no effect, and leaves it out of the optimiser.
    head[6].bias.requires_grad_(False)
    return head


def simsiam_predictor(dim: int, hidden_dim: int) -> nn.Sequential:
    """SimSiam's 2-layer predictor with a bottleneck: Linear-BN-ReLU-Linear (no BN on the output)."""
    return nn.Sequential(*_linear_bn_relu(dim, hidden_dim), nn.Linear(hidden_dim, dim))


def barlow_twins_projector(in_dim: int, dims: Sequence[int]) -> nn.Sequential:
    """Barlow Twins' projector: [Linear-BN-ReLU] for every layer but the last, which is a bias-free Linear.

    The method batch-normalises the output before the loss, which would cancel a bias here.
    """
    widths = [in_dim, *dims]
    layers = [m for a, b in pairwise(widths[:-1]) for m in _linear_bn_relu(a, b)]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1], bias=False))

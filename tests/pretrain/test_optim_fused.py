"""``build_optimizer(..., fused=True)``: torch's fused SGD / Adam kernels compute what the default kernels do.

torch 2.14 has fused SGD and Adam for CPU parameters too, so the comparison runs here on the CPU; on CUDA the
same flag selects the CUDA kernels. LARS has no fused kernel and must be unchanged by the flag.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dira.config import validate
from dira.train.optim import LARS, build_optimizer, parameter_groups, set_learning_rate


def _settings(method: str) -> dict:
    return validate({})["pretrain"][method]["optimizer"]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _train(model: nn.Module, method: str, fused: bool, steps: int = 4) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A few steps on a fixed batch, the lr schedule set each step as the trainer does."""
    settings = _settings(method)
    optimizer = build_optimizer(parameter_groups(model, settings, batch_size=256), settings, fused=fused)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=g), torch.randn(16, 3, generator=g)
    for step in range(steps):
        set_learning_rate(optimizer, settings, 1, step, steps, 10)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("method", ["mocov2", "simsiam", "transvw"])  # SGD, SGD with bias groups, Adam
def test_fused_sgd_and_adam_match_the_default_kernels(method):
    reference = _model()
    start = [p.detach().clone() for p in reference.parameters()]
    fused_model, fused_optimizer = _train(copy.deepcopy(reference), method, fused=True)
    plain_model, plain_optimizer = _train(reference, method, fused=False)
    assert fused_optimizer.defaults["fused"] is True
    assert not plain_optimizer.defaults.get("fused")
    assert type(fused_optimizer) is type(plain_optimizer)
    assert len(fused_optimizer.param_groups) == len(plain_optimizer.param_groups)
    for fused_p, plain_p, first in zip(fused_model.parameters(), plain_model.parameters(), start, strict=True):
        assert not torch.equal(plain_p, first)  # the steps moved every parameter, so agreeing means something
        torch.testing.assert_close(fused_p, plain_p, rtol=1e-5, atol=1e-6)


def test_fused_keeps_each_groups_learning_rate_and_weight_decay():
    settings = _settings("simsiam")
    groups = parameter_groups(_model(), settings, batch_size=256)
    fused = build_optimizer(copy.deepcopy(groups), settings, fused=True)
    plain = build_optimizer(groups, settings)
    for a, b in zip(fused.param_groups, plain.param_groups, strict=True):
        assert (a["lr"], a["base_lr"], a["weight_decay"], a["fixed"]) == (b["lr"], b["base_lr"], b["weight_decay"],
                                                                          b["fixed"])


def test_lars_has_no_fused_kernel_and_ignores_the_flag_bitwise():
    reference = _model()
    fused_model, fused_optimizer = _train(copy.deepcopy(reference), "barlowtwins", fused=True)
    plain_model, _ = _train(reference, "barlowtwins", fused=False)
    assert isinstance(fused_optimizer, LARS)
    assert "fused" not in fused_optimizer.defaults
    for fused_p, plain_p in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        assert torch.equal(fused_p, plain_p)

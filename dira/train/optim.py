"""Optimisers and learning-rate schedules of the pre-training methods, each as its paper prescribes.

- MoCo-v2: SGD, cosine set once per epoch (the reference's ``adjust_learning_rate``).
- SimSiam: SGD with lr × batch/256, cosine, optionally a constant learning rate for the predictor.
- Barlow Twins: LARS with biases and batch-norm parameters excluded from weight decay and from the
  trust ratio, separate learning rates for weights and biases, linear warm-up then cosine to 1/1000,
  set every step.

All of this is driven by the method's ``optimizer`` config section; nothing here knows method names.
PyTorch ships no LARS, so it is implemented below (the layer-wise trust ratio of You et al., 2017, in
the form Barlow Twins uses).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step of each parameter is scaled by η·‖w‖ / ‖∇w + λw‖.

    Parameter groups with ``lars_adaptation=False`` (biases, norms) take plain SGD-momentum steps.
    """

    def __init__(self, params: Iterable[Any], lr: float, *, momentum: float, weight_decay: float, eta: float,
                 lars_adaptation: bool):
        # No defaults: the values come from the method's ``optimizer`` section (the schema holds the paper's);
        # as in torch's optimisers, each applies to the parameter groups that do not set their own.
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                    "lars_adaptation": lars_adaptation}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                if group["lars_adaptation"]:
                    param_norm, update_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    trust = torch.where((param_norm > 0) & (update_norm > 0),
                                        group["eta"] * param_norm / update_norm, torch.ones_like(param_norm))
                    update.mul_(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(update)
                p.add_(buffer, alpha=-group["lr"])
        return loss


def base_learning_rate(lr: float, scaling: str, batch_size: int) -> float:
    """The linear scaling rule (lr × batch / 256) where the method's recipe uses it."""
    return lr * batch_size / 256 if scaling == "linear" else lr


def parameter_groups(modules: nn.Module | list[nn.Module], settings: dict[str, Any], batch_size: int,
                     fixed_lr: set[int] | None = None) -> list[dict[str, Any]]:
    """Trainable parameters split by what the recipe treats differently.

    ``fixed_lr`` holds ``id``s of parameters whose learning rate the schedule must not change
    (SimSiam's predictor). Each group carries its ``base_lr`` and whether its lr is ``fixed``.
    """
    fixed_lr = fixed_lr or set()
    modules = modules if isinstance(modules, list) else [modules]
    split_bias = settings["exclude_bias_and_norm"] or settings["bias_lr"] is not None
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            key = (split_bias and p.ndim <= 1, id(p) in fixed_lr)
            groups.setdefault(key, []).append(p)
    lr = base_learning_rate(settings["lr"], settings["lr_scaling"], batch_size)
    bias_lr = base_learning_rate(settings["bias_lr"], settings["lr_scaling"], batch_size) \
        if settings["bias_lr"] is not None else lr
    out = []
    for (is_bias, is_fixed), params in groups.items():
        excluded = is_bias and settings["exclude_bias_and_norm"]
        out.append({
            "params": params, "base_lr": bias_lr if is_bias else lr, "lr": bias_lr if is_bias else lr,
            "fixed": is_fixed, "weight_decay": 0.0 if excluded else settings["weight_decay"],
            **({"lars_adaptation": not excluded} if settings["name"] == "lars" else {}),
        })
    return out


def build_optimizer(groups: list[dict[str, Any]], settings: dict[str, Any], *, fused: bool = False
                    ) -> torch.optim.Optimizer:
    """The method's optimiser over ``groups`` (from :func:`parameter_groups`).

    ``fused`` is how the update runs, not what it computes: torch's single-kernel SGD / Adam (``fused=True``;
    CUDA and, in torch >= 2.4, the CPU too; torch raises for parameters on a device or of a dtype it has no
    fused kernel for). The results agree with the default (foreach / for-loop) kernels up to rounding. LARS has
    no fused kernel: its per-parameter trust ratio runs as always, whatever ``fused`` says, so that a caller
    may ask for fused optimisers without knowing the method.
    """
    kernel = {"fused": True} if fused else {}  # unset rather than False: torch then picks foreach on CUDA
    if settings["name"] == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=settings["momentum"],
                               weight_decay=settings["weight_decay"], **kernel)
    if settings["name"] == "lars":
        return LARS(groups, lr=groups[0]["lr"], momentum=settings["momentum"],
                    weight_decay=settings["weight_decay"], eta=settings["eta"],
                    lars_adaptation=True)  # every group of parameter_groups sets its own
    if settings["name"] == "adam":  # TransVW's; weight decay as L2 in the gradient, as torch's Adam
        return torch.optim.Adam(groups, lr=groups[0]["lr"], betas=tuple(settings["betas"]),
                                weight_decay=settings["weight_decay"], **kernel)
    raise ValueError(f"unknown optimizer '{settings['name']}' (choose from sgd, lars, adam)")


def schedule_factor(progress: float, epochs: int, warmup_epochs: float, final_fraction: float) -> float:
    """Multiplier of the base lr after ``progress`` epochs: linear warm-up, then cosine to ``final_fraction``."""
    if progress < warmup_epochs:
        return progress / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-12)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress - warmup_epochs, span) / span))
    return final_fraction + (1.0 - final_fraction) * cosine


def step_decay_factor(progress: float, warmup_epochs: float, step_epochs: int, gamma: float) -> float:
    """StepLR's multiplier (gamma every ``step_epochs`` whole epochs) after an optional linear warm-up."""
    if progress < warmup_epochs:
        return progress / warmup_epochs
    return gamma ** int((progress - warmup_epochs) // step_epochs)


def set_learning_rate(optimizer: torch.optim.Optimizer, settings: dict[str, Any], epoch: int, step: int,
                      steps_per_epoch: int, epochs: int) -> float:
    """Apply the schedule for this step; returns the lr of the first scheduled group (for the log)."""
    progress = epoch + step / steps_per_epoch if settings["schedule"] == "step" else float(epoch)
    if settings.get("decay") == "step":  # only TransVW's section has the key: the 2D recipes are all cosine
        factor = step_decay_factor(progress, settings["warmup_epochs"], settings["step_epochs"], settings["step_gamma"])
    else:
        factor = schedule_factor(progress, epochs, settings["warmup_epochs"], settings["final_lr_fraction"])
    logged = None
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] if group["fixed"] else group["base_lr"] * factor
        if logged is None and not group["fixed"]:
            logged = group["lr"]
    return logged if logged is not None else optimizer.param_groups[0]["lr"]

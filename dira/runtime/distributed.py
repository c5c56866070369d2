"""Multi-process pre-training under ``torchrun``: one process per GPU (NCCL) or per CPU slot (gloo).

The pieces are deliberately explicit rather than hidden in ``DistributedDataParallel``: DiRA trains two
networks with two optimisers (generator and discriminator), the discriminative methods use only part of
the U-Net in some stages, and the MoCo key path needs gathers of its own. So gradients are averaged
by one coalesced all-reduce per optimiser step (``sync_gradients``), and the methods call the small
collectives below only in training mode and only when a process group exists; in one process they are
no-ops, which is what keeps the single-process and the distributed code paths the same code.

PyTorch's ``SyncBatchNorm`` runs on GPUs only, so ``GlobalBatchNorm`` provides the same statistics for
CPU process groups (the gloo equivalence tests run on it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group torchrun set up; returns the context and this process's device."""
    if not launched_by_torchrun():
        return Context(), device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), local_rank), device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's tensor along dim 0, in rank order (no gradient)."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes that gradients flow back through (the sum's backward is a sum again)."""
    return dist_fn.all_reduce(tensor, op=dist.ReduceOp.SUM) if active() else tensor


def sync_gradients(parameters: list[nn.Parameter]) -> None:
    """Average gradients across processes with one flat all-reduce per dtype."""
    if not active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    for dtype in {g.dtype for g in grads}:
        same = [g for g in grads if g.dtype == dtype]
        flat = torch.cat([g.reshape(-1) for g in same])
        dist.all_reduce(flat)
        flat.div_(dist.get_world_size())
        offset = 0
        for g in same:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


@torch.no_grad()
def broadcast_state(module: nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if not active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def mean_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if not active() or not values:
        return values
    keys = sorted(values)
    packed = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    packed /= dist.get_world_size()
    return dict(zip(keys, packed.tolist(), strict=True))


def barrier() -> None:
    if active():
        dist.barrier()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the whole process group, on any device and backend.

    Statistics are the sums of x and x² over all processes (an all-reduce that gradients flow through),
    so the result equals batch norm over the concatenated global batch, as SimSiam and Barlow Twins train.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = all_reduce_sum(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = stats[channels:2 * channels] / total - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * total / (total - 1), momentum)
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every batch norm by a process-group-wide one (SyncBatchNorm on GPUs, GlobalBatchNorm else)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_global(module)


def _to_global(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        if module.affine:
            converted.weight.requires_grad_(module.weight.requires_grad)
            converted.bias.requires_grad_(module.bias.requires_grad)
        return converted.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        setattr(module, name, _to_global(child))
    return module

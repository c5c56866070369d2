"""One training step of every method and stage, run the same way in one process and in several.

Not a test file itself: ``test_distributed.py`` runs ``step`` in a single process and spawns
``worker`` in two gloo processes, then compares what both return.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dira.config import validate
from dira.methods.dira import STAGES, build_dira
from dira.runtime import distributed

GLOBAL_BATCH = 8
CASES = [(m, s) for m in ("mocov2", "simsiam", "barlowtwins") for s in ("di", "dir", "dira")]


def settings(method: str, world: int) -> dict:
    return validate({
        "model": {"backbone": "resnet18", "decoder_channels": [16, 8, 8, 8, 8]},
        "pretrain": {
            # one emulated batch-norm group per process: the single-process equivalent of shuffle-BN
            "mocov2": {"queue_size": 16, "hidden_dim": 16, "out_dim": 8, "bn_splits": world},
            "simsiam": {"proj_dim": 16, "pred_dim": 8},
            "barlowtwins": {"proj_dims": [16, 16, 16]},
        },
    })


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    view1 = torch.rand(GLOBAL_BATCH, 1, 32, 32, generator=g)
    view2 = (view1 + 0.1 * torch.randn(GLOBAL_BATCH, 1, 32, 32, generator=g)).clamp(0, 1)
    return view1, view2, torch.rand(GLOBAL_BATCH, 1, 32, 32, generator=g)


def step(method: str, stage_name: str, world: int, rank: int = 0) -> dict[str, torch.Tensor]:
    """Losses of one generator step on this process's slice of the batch, and the weights after it."""
    stage = STAGES[stage_name]
    cfg = settings(method, world)
    torch.manual_seed(0)
    model = build_dira(method, stage.adversarial, cfg["model"], cfg["pretrain"])
    if distributed.active() and model.method.sync_batchnorm:
        distributed.convert_batchnorm(model, torch.device("cpu"))
    model.train()
    view1, view2, target = (t.chunk(distributed.world_size())[rank] for t in batch())
    losses = model.generator_losses(stage, {"view1": view1, "view2": view2, "target": target})
    opt = torch.optim.SGD(model.generator_parameters(), lr=0.1)
    opt.zero_grad()
    losses.total.backward()
    distributed.sync_gradients(model.generator_parameters())
    opt.step()
    terms = {k: v.detach().reshape(1) for k, v in {"total": losses.total, **losses.terms}.items()}
    if distributed.active():  # the logged value of a term is its mean over processes
        for v in terms.values():
            dist.all_reduce(v)
            v /= distributed.world_size()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()
               if k.startswith(("unet.encoder.layer4.1", "unet.decoder.blocks.0", "method."))
               and not k.endswith("num_batches_tracked")}
    return {**{f"loss/{k}": v for k, v in terms.items()}, **{f"weight/{k}": v for k, v in weights.items()}}


def worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {f"{m}/{s}": step(m, s, world, rank) for m, s in CASES}
        if rank == 0:
            torch.save(results, out_file)
    finally:
        dist.destroy_process_group()

"""Small helpers shared by the pre-training tests: toy HDF5 caches and a few steps on a fixed batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dira.data.cache import CacheWriter
from dira.methods.dira import STAGES, DiRA


def write_toy_caches(folder: Path, sizes: dict[str, int], image_size: int = 32) -> Path:
    """Random-noise split caches (``train.h5``, ``val.h5``, ...) for runs that only need the loop to work."""
    rng = np.random.default_rng(0)
    for split, n in sizes.items():
        with CacheWriter(folder / f"{split}.h5", n, image_size, {"dataset": "toy", "split": split}) as writer:
            for i in range(n):
                writer.write_image(i, (rng.random((image_size, image_size)) * 255).astype(np.uint8),
                                   (image_size, image_size))
            writer.write_array("ids", [f"{split}{i}.png" for i in range(n)])
    return folder


def train_on_fixed_batch(model: DiRA, stage_name: str, batch: tuple[torch.Tensor, ...],
                         steps: int = 20) -> list[dict[str, float]]:
    """SGD on the generator (and Adam on the discriminator in adversarial stages); the terms of each step."""
    stage = STAGES[stage_name]
    view1, view2, target = batch
    opt = torch.optim.SGD(model.generator_parameters(), lr=0.03, momentum=0.9)
    d_opt = torch.optim.Adam(model.discriminator.parameters(), 2e-4, betas=(0.5, 0.999)) if stage.adversarial else None
    history = []
    for _ in range(steps):
        losses = model.generator_losses(stage, {"view1": view1, "view2": view2, "target": target})
        opt.zero_grad()
        losses.total.backward()
        opt.step()
        if d_opt:
            d_loss = model.discriminator_loss(target, losses.restored)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
        history.append({"total": losses.total.item(), **{k: v.item() for k, v in losses.terms.items()}})
    return history


def as_batch(view1: torch.Tensor, view2: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """A two-view method's batch, as the pre-training data pipeline hands it to DiRA."""
    return {"view1": view1, "view2": view2, "target": target}

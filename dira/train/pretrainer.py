"""The epoch loop of one pre-training run: optimisers, training and validation epochs, resumable state.

One process, or one of several under torchrun: each process takes its slice of every global batch,
gradients are averaged before each optimiser step, and the main process alone validates and writes.

The loader hands over stored rows (uint8 images, visual-word cubes); the method's views are made from each
whole batch on the training device (``views``), from a CPU generator seeded by (seed, epoch, step, rank): a
resumed run, which restarts at an epoch boundary, draws exactly the views an uninterrupted one does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dira.data.loader import row_loader
from dira.errors import InputError
from dira.methods.dira import DiRA, LossWeights, Stage
from dira.runtime import distributed
from dira.seeding import derive_seed
from dira.train import checkpoint, optim
from dira.train.history import History

# (stored rows on the device, generator, restoring) -> the method's inputs (and ``target`` when restoring)
ViewPipeline = Callable[[dict[str, torch.Tensor], torch.Generator, bool], dict[str, torch.Tensor]]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last saved state is left as it was."""


VALIDATION_EPOCH = -1  # validation views are drawn from a fixed seed, identical every epoch


class Pretrainer:
    """``train_set`` / ``val_set`` give stored rows (``dira.data.samples.StoredRows``) and ``views`` makes the
    method's inputs of a batch of them; without ``views`` (benchmarks), ``train_step`` is driven directly."""

    def __init__(self, model: DiRA, train_set: Dataset, val_set: Dataset, settings: dict[str, Any],
                 method: str, batch_size: int, device: torch.device, history: History, label: str,
                 ctx: distributed.Context | None = None, views: ViewPipeline | None = None):
        self.model, self.train_set, self.val_set, self.views = model, train_set, val_set, views
        self.settings, self.optimizer_settings = settings, settings[method]["optimizer"]
        self.batch_size = batch_size
        self.device, self.history, self.label = device, history, label
        self.ctx = ctx or distributed.Context()
        if batch_size % self.ctx.world_size:
            raise InputError(f"pre-training batch size {batch_size} is not divisible by the "
                             f"{self.ctx.world_size} processes")
        self.local_batch = batch_size // self.ctx.world_size
        self.cuda = device.type == "cuda"
        # How steps run, not what they compute: on GPUs bf16 autocast (no loss scaling needed) and torch's fused
        # SGD / Adam kernels; full precision and the default kernels on the CPU. Benchmarks switch them per row.
        self.mixed_precision = self.fused = self.cuda
        self.optimizer: torch.optim.Optimizer | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.best_val, self.best_epoch = math.inf, -1

    # ---------------------------------------------------------------- optimisers and state
    def start_stage(self, stage: Stage, weights: LossWeights) -> None:
        self.model.weights = weights
        fixed = {id(p) for p in self.model.method.fixed_lr_parameters()}
        groups = optim.parameter_groups(self.model.generator_modules(), self.optimizer_settings,
                                        self.batch_size, fixed)
        # LARS has no fused kernel and ignores the switch
        self.optimizer = optim.build_optimizer(groups, self.optimizer_settings, fused=self.fused)
        self.d_optimizer = None
        if stage.adversarial:
            d = self.settings["discriminator"]
            self.d_optimizer = torch.optim.Adam(self.model.discriminator.parameters(), lr=d["lr"],
                                                betas=tuple(d["betas"]), fused=self.fused or None)

    def state(self, stage_index: int, next_epoch: int, fingerprint: str, finished: bool) -> dict[str, Any]:
        # At a stage boundary the next stage starts fresh optimisers, so their moments are not kept.
        keep_optimizers = next_epoch > 0
        return {
            "fingerprint": fingerprint, "stage_index": stage_index, "next_epoch": next_epoch,
            "finished": finished, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if keep_optimizers else {},
            "d_optimizer": self.d_optimizer.state_dict() if keep_optimizers and self.d_optimizer else {},
            "best_val": self.best_val, "best_epoch": self.best_epoch,
            "rng": checkpoint.rng_state(), "history": self.history.rows,
        }

    def restore(self, state: dict[str, Any], stage: Stage | None, weights: LossWeights | None) -> None:
        self.model.load_state_dict(state["model"])
        self.best_val, self.best_epoch = state["best_val"], state["best_epoch"]
        self.history.replace(state["history"])
        checkpoint.restore_rng(state["rng"])
        if stage is None:  # the run had finished; nothing is left to optimise
            return
        self.start_stage(stage, weights)
        if state["optimizer"]:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.d_optimizer is not None and state["d_optimizer"]:
            self.d_optimizer.load_state_dict(state["d_optimizer"])

    # ---------------------------------------------------------------- data
    def _train_loader(self, epoch: int) -> DataLoader:
        """This process's slice of each global batch of a seeded epoch order (the same in every process)."""
        generator = torch.Generator().manual_seed(derive_seed(self.settings["seed"], "order", epoch))
        order = torch.randperm(len(self.train_set), generator=generator).tolist()
        batch, local, rank = self.batch_size, self.local_batch, self.ctx.rank
        steps = len(order) // batch
        mine = [order[s * batch + rank * local + j] for s in range(steps) for j in range(local)]
        return self._loader(self.train_set, mine, epoch)

    def _loader(self, dataset: Dataset, indices: list[int] | None, epoch: int) -> DataLoader:
        return row_loader(dataset, indices, self.local_batch, num_workers=self.settings["num_workers"],
                          pin_memory=self.cuda, seed=derive_seed(self.settings["seed"], "workers", epoch))

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def make_views(self, rows: dict[str, torch.Tensor], epoch: int, step: int,
                   restoring: bool) -> dict[str, torch.Tensor]:
        """The method's inputs of a batch of stored rows already on the device, in the training memory format."""
        generator = torch.Generator().manual_seed(derive_seed(self.settings["seed"], "views", epoch, step,
                                                              self.ctx.rank))
        views = self.views(rows, generator, restoring)
        return {k: v.contiguous(memory_format=self._memory_format(v)) for k, v in views.items()}

    def _memory_format(self, tensor: torch.Tensor) -> torch.memory_format:
        # channels-last images and volumes on GPUs (faster convolutions); labels and CPU tensors as they are
        if self.cuda and tensor.dim() in (4, 5):
            return torch.channels_last if tensor.dim() == 4 else torch.channels_last_3d
        return torch.contiguous_format

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)

    # ---------------------------------------------------------------- epochs
    def train_epoch(self, stage: Stage, epoch: int, epochs: int) -> dict[str, float]:
        self.model.train()
        loader = self._train_loader(epoch)
        if len(loader) == 0:
            raise InputError(f"{self.train_set.cache.path}: {len(self.train_set)} samples are fewer than "
                             f"one batch of {self.batch_size}")
        sums: dict[str, torch.Tensor] = {}
        start, lr = time.perf_counter(), 0.0
        bar = tqdm(loader, desc=f"{self.label} {stage.name} {epoch + 1}/{epochs}", leave=False,
                   mininterval=5.0, dynamic_ncols=True, disable=not self.ctx.is_main)
        for step, batch in enumerate(bar):
            lr = optim.set_learning_rate(self.optimizer, self.optimizer_settings, epoch, step, len(loader), epochs)
            views = self.make_views(self.to_device(batch), epoch, step, stage.restoration)
            terms = self.train_step(stage, views, epoch, step)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
        elapsed = time.perf_counter() - start
        means = distributed.mean_over_processes(
            {f"train_{k}": (v / len(loader)).item() for k, v in sums.items()}, self.device)
        images = len(loader) * self.batch_size
        return {**means, "lr": lr, "images_per_s": images / elapsed, "seconds": elapsed}

    def train_step(self, stage: Stage, batch: dict[str, torch.Tensor], epoch: int,
                   step: int) -> dict[str, torch.Tensor]:
        """One generator step and, in adversarial stages, one discriminator step; returns the detached terms.

        ``batch`` holds the views, on the device (see ``make_views``); the benchmark times exactly this.
        """
        with self._autocast():
            losses = self.model.generator_losses(stage, batch)
        terms = {"total": losses.total, **losses.terms}
        self._check_finite(stage, epoch, step, terms)
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        distributed.sync_gradients(self.model.generator_parameters())
        self.optimizer.step()
        if stage.adversarial:
            with self._autocast():
                terms["d"] = self.model.discriminator_loss(batch["target"], losses.restored)
            self._check_finite(stage, epoch, step, {"d": terms["d"]})
            self.d_optimizer.zero_grad(set_to_none=True)
            terms["d"].backward()
            distributed.sync_gradients(list(self.model.discriminator.parameters()))
            self.d_optimizer.step()
        return {k: v.detach().float() for k, v in terms.items()}

    @torch.no_grad()
    def validate(self, stage: Stage) -> dict[str, float]:
        """Weighted loss terms on the validation split, with views drawn from a fixed seed."""
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        for step, rows in enumerate(self._loader(self.val_set, None, VALIDATION_EPOCH)):
            batch = self.make_views(self.to_device(rows), VALIDATION_EPOCH, step, stage.restoration)
            with self._autocast():
                losses = self.model.generator_losses(stage, batch)
            n = batch[self.model.method.inputs[0]].shape[0]
            for name, value in {"total": losses.total, **losses.terms}.items():
                sums[name] = sums.get(name, 0.0) + value.float().item() * n
            count += n
        return {f"val_{k}": v / count for k, v in sums.items()}

    def _check_finite(self, stage: Stage, epoch: int, step: int, terms: dict[str, torch.Tensor]) -> None:
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in terms.values()])
        if bool(finite.all()):
            return
        bad = ", ".join(f"{k} = {v.item()}" for k, v in terms.items() if not torch.isfinite(v).all())
        raise TrainingDiverged(
            f"{self.label}: non-finite loss in stage '{stage.name}' epoch {epoch + 1} step {step}: {bad}; "
            "the last saved training state is untouched"
        )

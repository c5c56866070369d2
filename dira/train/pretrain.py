"""``dira pretrain``: staged DiRA pre-training of one method and variant, resumable after any crash.

Variants and their stages (appendix C.1):

- ``base``: discrimination only, the original method's schedule (the reference's ``di`` mode).
- ``dir``:  continues from ``base`` with discrimination + restoration for warm-up + adversarial epochs.
- ``dira``: continues from ``base``; discrimination + restoration warm-up, then all three losses.

Each stage starts a fresh optimiser and cosine schedule, as the reference's separate runs do. The
weights kept are those of the lowest validation loss within the last stage (the loss changes meaning
between stages, so earlier stages cannot compete). Validation draws fixed views and, in eval mode,
never touches the MoCo queue or momentum encoder (the reference's validation mutates both).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dira.data.cache import SplitCache
from dira.data.distortions import DistortionProbabilities
from dira.data.views import VALIDATION_EPOCH, TwoViewDataset, ViewSettings
from dira.errors import InputError
from dira.io import load_torch, save_torch, write_json
from dira.methods.dira import STAGES, DiRA, Stage, build_dira
from dira.provenance import provenance
from dira.seeding import derive_seed
from dira.train import checkpoint, optim
from dira.train.history import History
from dira.train.runtime import configure_threads, resolve_device, seed_everything

log = logging.getLogger(__name__)

VARIANTS = ("base", "dir", "dira")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last saved state is left as it was."""


@dataclass(frozen=True)
class StagePlan:
    stage: Stage
    epochs: int


def stage_plan(variant: str, epochs: dict[str, int]) -> list[StagePlan]:
    if variant == "base":
        return [StagePlan(STAGES["di"], epochs["discrimination"])]
    if variant == "dir":
        return [StagePlan(STAGES["dir"], epochs["restoration_warmup"] + epochs["adversarial"])]
    if variant == "dira":
        return [StagePlan(STAGES["dir"], epochs["restoration_warmup"]),
                StagePlan(STAGES["dira"], epochs["adversarial"])]
    raise InputError(f"unknown variant '{variant}' (choose from {', '.join(VARIANTS)})")


def load_initial_weights(model: DiRA, path: Path) -> None:
    """Start from a ``base`` run's ``method.pt``; only a discriminator may be missing from it."""
    result = model.load_state_dict(load_torch(path), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("discriminator.")]
    if missing or result.unexpected_keys:
        raise InputError(f"{path}: does not fit this method and backbone "
                         f"(missing {missing[:4]}, unexpected {result.unexpected_keys[:4]})")


class Pretrainer:
    """The epoch loop of one pre-training run; owns the model, data, optimisers and resumable state."""

    def __init__(self, model: DiRA, train_set: TwoViewDataset, val_set: TwoViewDataset,
                 settings: dict[str, Any], method: str, device: torch.device, state_dir: Path, label: str):
        self.model, self.train_set, self.val_set = model, train_set, val_set
        self.settings, self.optimizer_settings = settings, settings[method]["optimizer"]
        self.device, self.state_dir, self.label = device, state_dir, label
        self.cuda = device.type == "cuda"
        self.history = History(state_dir / "history.csv")
        self.optimizer: torch.optim.Optimizer | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.best_val, self.best_epoch = math.inf, -1

    # ---------------------------------------------------------------- optimisers and state
    def start_stage(self, stage: Stage) -> None:
        fixed = {id(p) for p in self.model.method.fixed_lr_parameters()}
        groups = optim.parameter_groups(self.model.generator_modules(), self.optimizer_settings,
                                        self.settings["batch_size"], fixed)
        self.optimizer = optim.build_optimizer(groups, self.optimizer_settings)
        self.d_optimizer = None
        if stage.adversarial:
            d = self.settings["discriminator"]
            self.d_optimizer = torch.optim.Adam(self.model.discriminator.parameters(), lr=d["lr"],
                                                betas=tuple(d["betas"]))

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

    def restore(self, state: dict[str, Any], stage: Stage | None) -> None:
        self.model.load_state_dict(state["model"])
        self.best_val, self.best_epoch = state["best_val"], state["best_epoch"]
        self.history.replace(state["history"])
        checkpoint.restore_rng(state["rng"])
        if stage is None:  # the run had finished; nothing is left to optimise
            return
        self.start_stage(stage)
        if state["optimizer"]:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.d_optimizer is not None and state["d_optimizer"]:
            self.d_optimizer.load_state_dict(state["d_optimizer"])

    # ---------------------------------------------------------------- epochs
    def _loader(self, dataset: TwoViewDataset, epoch: int, train: bool) -> DataLoader:
        dataset.set_epoch(epoch)
        order = None
        if train:
            generator = torch.Generator().manual_seed(derive_seed(self.settings["seed"], "order", epoch))
            order = torch.randperm(len(dataset), generator=generator).tolist()
        return DataLoader(
            dataset, batch_size=self.settings["batch_size"], sampler=order, drop_last=train,
            num_workers=self.settings["num_workers"], pin_memory=self.cuda,
            generator=torch.Generator().manual_seed(derive_seed(self.settings["seed"], "workers", epoch)),
        )

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fmt = torch.channels_last if self.cuda else torch.contiguous_format
        return {k: v.to(self.device, non_blocking=True, memory_format=fmt) for k, v in batch.items()}

    def _autocast(self):
        # bf16 on GPUs (no loss scaling needed); full precision on the CPU, where autocast buys nothing.
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cuda)

    def train_epoch(self, stage: Stage, epoch: int, epochs: int) -> dict[str, float]:
        self.model.train()
        self.train_set.restoration = stage.restoration
        loader = self._loader(self.train_set, epoch, train=True)
        if len(loader) == 0:
            raise InputError(f"{self.train_set.cache.path}: {len(self.train_set)} images are fewer than "
                             f"one batch of {self.settings['batch_size']}")
        sums: dict[str, torch.Tensor] = {}
        start, seen = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"{self.label} {stage.name} {epoch + 1}/{epochs}", leave=False,
                   mininterval=5.0, dynamic_ncols=True)
        for step, batch in enumerate(bar):
            lr = optim.set_learning_rate(self.optimizer, self.optimizer_settings, epoch, step, len(loader), epochs)
            batch = self._to_device(batch)
            with self._autocast():
                losses = self.model.generator_losses(stage, batch["view1"], batch["view2"], batch.get("target"))
            total, terms = losses.total, losses.terms
            self._check_finite(stage, epoch, step, {"total": total, **terms})
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            if stage.adversarial:
                with self._autocast():
                    terms["d"] = self.model.discriminator_loss(batch["target"], losses.restored)
                self._check_finite(stage, epoch, step, {"d": terms["d"]})
                self.d_optimizer.zero_grad(set_to_none=True)
                terms["d"].backward()
                self.d_optimizer.step()
            for name, value in {"total": total, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            seen += batch["view1"].shape[0]
        elapsed = time.perf_counter() - start
        means = {f"train_{k}": (v / len(loader)).item() for k, v in sums.items()}
        return {**means, "lr": lr, "images_per_s": seen / elapsed, "seconds": elapsed}

    @torch.no_grad()
    def validate(self, stage: Stage) -> dict[str, float]:
        self.model.eval()
        self.val_set.restoration = stage.restoration
        sums: dict[str, float] = {}
        count = 0
        for batch in self._loader(self.val_set, VALIDATION_EPOCH, train=False):
            batch = self._to_device(batch)
            with self._autocast():
                losses = self.model.generator_losses(stage, batch["view1"], batch["view2"], batch.get("target"))
            n = batch["view1"].shape[0]
            for name, value in {"total": losses.total, **losses.terms}.items():
                sums[name] = sums.get(name, 0.0) + value.float().item() * n
            count += n
        return {f"val_{k}": v / count for k, v in sums.items()}

    def _check_finite(self, stage: Stage, epoch: int, step: int, terms: dict[str, torch.Tensor]) -> None:
        if all(torch.isfinite(v).item() for v in terms.values()):
            return
        bad = ", ".join(f"{k} = {v.item()}" for k, v in terms.items() if not torch.isfinite(v).item())
        raise TrainingDiverged(
            f"{self.label}: non-finite loss in stage '{stage.name}' epoch {epoch + 1} step {step}: {bad}; "
            f"the last saved state in {self.state_dir} is untouched"
        )


def pretrain(method: str, variant: str, train_h5: Path, val_h5: Path, out_dir: Path, init: Path | None,
             state_dir: Path | None, config: dict[str, Any]) -> None:
    settings = config["pretrain"]
    plan = stage_plan(variant, settings["epochs"])
    if (variant == "base") != (init is None):
        raise InputError(f"variant '{variant}' " + ("takes no --init" if variant == "base"
                                                    else "needs --init: the 'base' run's method.pt"))
    device = resolve_device(config["device"])
    configure_threads(config["threads"])
    seed_everything(settings["seed"])
    model = build_dira(method, variant == "dira", config["model"], settings)
    if init is not None:
        load_initial_weights(model, init)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    views = ViewSettings.from_config(settings["views"])
    distortions = DistortionProbabilities(**settings["distortion"])
    train_set = TwoViewDataset(SplitCache(train_h5), views, distortions, settings["seed"], settings["max_images"])
    val_set = TwoViewDataset(SplitCache(val_h5), views, distortions, settings["seed"])
    state_dir = state_dir or out_dir.parent / ".state" / out_dir.name
    job = {"method": method, "variant": variant, "model": config["model"], "pretrain": settings}
    fingerprint = checkpoint.fingerprint(job, [train_h5, val_h5, *([init] if init else [])])
    label = f"{method}/{variant}"
    trainer = Pretrainer(model, train_set, val_set, settings, method, device, state_dir, label)

    latest = state_dir / "latest.pt"
    state = checkpoint.load_state(latest, fingerprint)
    first_stage, first_epoch, finished = 0, 0, False
    if state is not None:
        first_stage, first_epoch, finished = state["stage_index"], state["next_epoch"], state["finished"]
        trainer.restore(state, plan[first_stage].stage if first_stage < len(plan) else None)
        log.info("%s: resuming from %s (stage %d, epoch %d)", label, latest, first_stage, first_epoch)
    log.info("%s: %d training / %d validation images on %s; stages %s", label, len(train_set),
             len(val_set), device, ", ".join(f"{p.stage.name}×{p.epochs}" for p in plan))

    for stage_index in range(first_stage, len(plan)):
        if finished:
            break
        stage, epochs = plan[stage_index].stage, plan[stage_index].epochs
        final_stage = stage_index == len(plan) - 1
        if not (state is not None and stage_index == first_stage):
            trainer.start_stage(stage)
            first_epoch = 0
        for epoch in range(first_epoch, epochs):
            row = {"stage": stage.name, "epoch": epoch + 1, **trainer.train_epoch(stage, epoch, epochs),
                   **trainer.validate(stage)}
            if final_stage and row["val_total"] < trainer.best_val:
                trainer.best_val, trainer.best_epoch = row["val_total"], epoch + 1
                save_torch(state_dir / "best.pt", model.state_dict())
            trainer.history.append(row)
            log.info("%s", trainer.history.summary(row))
            done = final_stage and epoch + 1 == epochs
            nxt = (stage_index, epoch + 1) if epoch + 1 < epochs else (stage_index + 1, 0)
            checkpoint.save_state(latest, trainer.state(*nxt, fingerprint, finished=done))
        state = None

    _export(state_dir, out_dir, config, job, trainer)
    # The outputs now hold everything worth keeping; a later rerun of this job should start afresh.
    shutil.rmtree(state_dir)


def _export(state_dir: Path, out_dir: Path, config: dict[str, Any], job: dict[str, Any], trainer: Pretrainer) -> None:
    """Write the kept (lowest validation loss) weights as encoder.pt, unet.pt and method.pt, plus the log."""
    best = load_torch(state_dir / "best.pt")
    unet = {k[len("unet."):]: v for k, v in best.items() if k.startswith("unet.")}
    encoder = {k[len("encoder."):]: v for k, v in unet.items() if k.startswith("encoder.")}
    save_torch(out_dir / "encoder.pt", encoder)
    save_torch(out_dir / "unet.pt", unet)
    save_torch(out_dir / "method.pt", best)
    trainer.history.write(out_dir / "history.csv")
    write_json(out_dir / "meta.json", {
        "method": job["method"], "variant": job["variant"], "backbone": config["model"]["backbone"],
        "stages": [{"stage": p.stage.name, "epochs": p.epochs}
                   for p in stage_plan(job["variant"], job["pretrain"]["epochs"])],
        "best_epoch_of_last_stage": trainer.best_epoch, "best_val_loss": trainer.best_val,
        "files": {"encoder.pt": "torchvision ResNet state dict without fc",
                  "unet.pt": "U-Net state dict (smp Unet key layout)",
                  "method.pt": "all pre-training weights (U-Net, heads, momentum encoder, queue, discriminator)"},
        "provenance": provenance({k: config[k] for k in ("device", "threads", "model", "pretrain")}),
    })

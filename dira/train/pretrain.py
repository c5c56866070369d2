"""``dira pretrain``: staged DiRA pre-training of one method and variant, resumable after any crash.

Variants and their stages (appendix C.1):

- ``base``: discrimination only, the original method's schedule (``pretrain.<method>.epochs``; the
  reference's ``di`` mode).
- ``dir``:  continues from ``base`` with discrimination + restoration for warm-up + adversarial epochs.
- ``dira``: continues from ``base``; discrimination + restoration warm-up, then all three losses.

Each stage starts a fresh optimiser and schedule, as the reference's separate runs do. The
weights kept are those of the lowest validation loss within the last stage (the loss changes meaning
between stages, so earlier stages cannot compete). Validation draws fixed views and, in eval mode,
never touches the MoCo queue or momentum encoder (the reference's validation mutates both).

The 2D methods pre-train the 2D U-Net on ChestX-ray14 (``model``, the shared batch, DiRA epochs and λ); TransVW
(3D) pre-trains the 3D U-Net on LUNA16's visual words (``model3d`` and its own section's batch, epochs and λ).
TransVW restores on its own, so its 'base' stage is already discrimination + restoration, at its own λ.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dira.data.batch_views import TwoViewBatch
from dira.data.cache import SplitCache
from dira.data.samples import StoredRows
from dira.data.view_recipe import ViewRecipe
from dira.data.views import Restoration
from dira.data.visual_word_views import VisualWordBatch, visual_word_classes
from dira.errors import InputError
from dira.io import load_torch, save_torch, write_json
from dira.methods import METHODS as METHOD_CLASSES
from dira.methods.dira import STAGES, DiRA, LossWeights, Stage, build_dira
from dira.provenance import provenance
from dira.registry import METHODS, VARIANTS
from dira.runtime import distributed
from dira.runtime.allocator import keep_freed_buffers
from dira.runtime.device import configure_threads, resolve_device
from dira.runtime.rng import seed_everything
from dira.stages import select, stage_keys
from dira.train import checkpoint
from dira.train.history import History
from dira.train.pretrainer import Pretrainer, TrainingDiverged, ViewPipeline

log = logging.getLogger(__name__)

__all__ = ["TrainingDiverged", "pretrain", "stage_plan"]


@dataclass(frozen=True)
class StagePlan:
    stage: Stage
    epochs: int
    weights: LossWeights


def model_section(method: str) -> str:
    """The config section of the method's network: ``model`` (2D U-Net) or ``model3d`` (3D U-Net)."""
    return "model3d" if METHODS[method].dims == 3 else "model"


def batch_size(method: str, settings: dict[str, Any]) -> int:
    """The global batch: shared by the 2D methods, TransVW's own."""
    return settings[method]["batch_size"] if METHODS[method].dims == 3 else settings["batch_size"]


def stage_plan(method: str, variant: str, settings: dict[str, Any]) -> list[StagePlan]:
    """Stages of one run from the validated ``pretrain`` section: 'base' follows the method's own schedule."""
    section = settings[method]
    if METHODS[method].dims == 3:
        epochs, base_weights = section["dira_epochs"], LossWeights(**section["loss_weights"])
        dira_weights = LossWeights(**section["dira_loss_weights"])
    else:
        epochs, base_weights = settings["epochs"], LossWeights(**settings["loss_weights"])
        dira_weights = base_weights
    if variant == "base":
        base = STAGES["dir"] if METHOD_CLASSES[method].restores_in_base else STAGES["di"]
        return [StagePlan(base, section["epochs"], base_weights)]
    if variant == "dir":
        return [StagePlan(STAGES["dir"], epochs["restoration_warmup"] + epochs["adversarial"], dira_weights)]
    if variant == "dira":
        warmup = [StagePlan(STAGES["dir"], epochs["restoration_warmup"], dira_weights)]
        return [*(warmup if epochs["restoration_warmup"] else []),
                StagePlan(STAGES["dira"], epochs["adversarial"], dira_weights)]
    raise InputError(f"unknown variant '{variant}' (choose from {', '.join(VARIANTS)})")  # the registry's


def stored_rows(method: str, train_h5: Path, val_h5: Path, config: dict[str, Any]) -> tuple[StoredRows, StoredRows]:
    """What the loader reads for the method: stored images (2D) or visual-word cubes with their labels (3D)."""
    settings = config["pretrain"]
    labels = METHOD_CLASSES[method].views == "visual_words"
    return (StoredRows(SplitCache(train_h5), settings["max_images"], labels=labels),
            StoredRows(SplitCache(val_h5), None, labels=labels))


def view_pipeline(method: str, config: dict[str, Any]) -> ViewPipeline:
    """The device-side views of the data pipeline the method's class names (``views``)."""
    settings = config["pretrain"]
    views = METHOD_CLASSES[method].views
    if views == "visual_words":
        return VisualWordBatch(settings[method]["views"])
    if views == "two_views":
        return TwoViewBatch(ViewRecipe.from_config(settings[method]["views"]), Restoration.from_config(settings),
                            config["model"]["input_size"])
    raise ValueError(f"{method}: unknown view pipeline '{views}'")


def data_structure(method: str, train_set: StoredRows, val_set: StoredRows) -> dict[str, Any]:
    """What the data fix about the model: TransVW's number of visual-word classes."""
    if METHOD_CLASSES[method].views == "visual_words":
        return {"classes": visual_word_classes(train_set.cache, val_set.cache)}
    return {}


def load_initial_weights(model: DiRA, path: Path) -> None:
    """Start from a ``base`` run's ``method.pt``; only a discriminator may be missing from it."""
    result = model.load_state_dict(load_torch(path), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("discriminator.")]
    if missing or result.unexpected_keys:
        raise InputError(f"{path}: does not fit this method and backbone "
                         f"(missing {missing[:4]}, unexpected {result.unexpected_keys[:4]})")


def pretrain(method: str, variant: str, train_h5: Path, val_h5: Path, out_dir: Path, init: Path | None,
             state_dir: Path | None, config: dict[str, Any]) -> None:
    settings = config["pretrain"]
    plan = stage_plan(method, variant, settings)
    if (variant == "base") != (init is None):
        raise InputError(f"variant '{variant}' " + ("takes no --init" if variant == "base"
                                                    else "needs --init: the 'base' run's method.pt"))
    ctx, device = distributed.init(resolve_device(config["device"]))
    try:
        _pretrain(method, variant, plan, train_h5, val_h5, out_dir, init, state_dir, config, ctx, device)
    finally:
        distributed.shutdown()


def _pretrain(method: str, variant: str, plan: list[StagePlan], train_h5: Path, val_h5: Path, out_dir: Path,
              init: Path | None, state_dir: Path | None, config: dict[str, Any], ctx: distributed.Context,
              device: torch.device) -> None:
    settings = config["pretrain"]
    configure_threads(config["threads"])
    keep_freed_buffers()  # each step's batch buffers reuse the last step's pages
    seed_everything(settings["seed"])
    train_set, val_set = stored_rows(method, train_h5, val_h5, config)
    model_cfg = config[model_section(method)]
    model = build_dira(method, variant == "dira", model_cfg, settings, data_structure(method, train_set, val_set))
    if init is not None:
        load_initial_weights(model, init)
    if ctx.distributed and model.method.sync_batchnorm:
        distributed.convert_batchnorm(model, device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last_3d if METHODS[method].dims == 3 else torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
    distributed.broadcast_state(model)

    state_dir = state_dir or out_dir.parent / ".state" / out_dir.name
    job = {"method": method, "variant": variant, "model": model_cfg, "pretrain": settings,
           "processes": ctx.world_size}
    fingerprint = checkpoint.fingerprint(job, [train_h5, val_h5, *([init] if init else [])])
    label = f"{method}/{variant}"
    trainer = Pretrainer(model, train_set, val_set, settings, method, batch_size(method, settings), device,
                         History(state_dir / "history.csv"), label, ctx, views=view_pipeline(method, config))

    latest = state_dir / "latest.pt"
    # The main process looks first (and sets a foreign state aside); the others read what it left.
    state = checkpoint.load_state(latest, fingerprint) if ctx.is_main else None
    distributed.barrier()
    if not ctx.is_main:
        state = checkpoint.load_state(latest, fingerprint, move_stale=False)
    first_stage, first_epoch, finished = 0, 0, False
    if state is not None:
        first_stage, first_epoch, finished = state["stage_index"], state["next_epoch"], state["finished"]
        current = plan[first_stage] if first_stage < len(plan) else None
        trainer.restore(state, current and current.stage, current and current.weights)
        log.info("%s: resuming from %s (stage %d, epoch %d)", label, latest, first_stage, first_epoch)
    if ctx.is_main:
        log.info("%s: %d training / %d validation images on %s x %d; stages %s", label, len(train_set),
                 len(val_set), device, ctx.world_size, ", ".join(f"{p.stage.name}×{p.epochs}" for p in plan))

    for stage_index in range(first_stage, len(plan)):
        if finished:
            break
        stage, epochs = plan[stage_index].stage, plan[stage_index].epochs
        final_stage = stage_index == len(plan) - 1
        if not (state is not None and stage_index == first_stage):
            trainer.start_stage(stage, plan[stage_index].weights)
            first_epoch = 0
        for epoch in range(first_epoch, epochs):
            row = {"stage": stage.name, "epoch": epoch + 1, **trainer.train_epoch(stage, epoch, epochs)}
            if ctx.is_main:
                row.update(trainer.validate(stage))
                if final_stage and row["val_total"] < trainer.best_val:
                    trainer.best_val, trainer.best_epoch = row["val_total"], epoch + 1
                    save_torch(state_dir / "best.pt", model.state_dict())
                trainer.history.append(row)
                log.info("%s", trainer.history.summary(row))
                done = final_stage and epoch + 1 == epochs
                nxt = (stage_index, epoch + 1) if epoch + 1 < epochs else (stage_index + 1, 0)
                checkpoint.save_state(latest, trainer.state(*nxt, fingerprint, finished=done))
            distributed.barrier()
        state = None

    if ctx.is_main:
        _export(state_dir, out_dir, config, job, trainer)
        # The outputs now hold everything worth keeping; a later rerun of this job should start afresh.
        shutil.rmtree(state_dir)
    distributed.barrier()


EXPORTED_FILES = {
    2: {"encoder.pt": "torchvision ResNet state dict without fc",
        "unet.pt": "U-Net state dict (smp Unet key layout)"},
    3: {"encoder.pt": "3D U-Net encoder state dict (Models Genesis keys down_tr64 ... down_tr512)",
        "unet.pt": "3D U-Net state dict (Models Genesis / TransVW key layout, without 'module.')"},
}


def encoder_weights(unet: dict[str, torch.Tensor], dims: int) -> dict[str, torch.Tensor]:
    """The encoder's part of a U-Net state dict, keyed as the fine-tuning networks load it."""
    if dims == 3:
        from dira.models.unet3d import ENCODER_NAMES

        return {k: v for k, v in unet.items() if k.split(".", 1)[0] in ENCODER_NAMES}
    return {k[len("encoder."):]: v for k, v in unet.items() if k.startswith("encoder.")}


def _export(state_dir: Path, out_dir: Path, config: dict[str, Any], job: dict[str, Any], trainer: Pretrainer) -> None:
    """Write the kept (lowest validation loss) weights as encoder.pt, unet.pt and method.pt, plus the log."""
    best = load_torch(state_dir / "best.pt")
    dims = METHODS[job["method"]].dims
    unet = {k[len("unet."):]: v for k, v in best.items() if k.startswith("unet.")}
    encoder = encoder_weights(unet, dims)
    save_torch(out_dir / "encoder.pt", encoder)
    save_torch(out_dir / "unet.pt", unet)
    save_torch(out_dir / "method.pt", best)
    trainer.history.write(out_dir / "history.csv")
    write_json(out_dir / "meta.json", {
        "method": job["method"], "variant": job["variant"], "dims": dims,
        "backbone": f"unet3d (base width {job['model']['base_width']})" if dims == 3 else job["model"]["backbone"],
        "stages": [{"stage": p.stage.name, "epochs": p.epochs}
                   for p in stage_plan(job["method"], job["variant"], job["pretrain"])],
        "best_epoch_of_last_stage": trainer.best_epoch, "best_val_loss": trainer.best_val,
        "files": {**EXPORTED_FILES[dims],
                  "method.pt": "all pre-training weights (U-Net, heads, momentum encoder, queue, discriminator)"},
        "provenance": provenance(select(config, stage_keys("pretrain", method=job["method"]))),
    })

"""What the two 3D runners share: the 3D U-Net from its weights, Adam + ReduceLROnPlateau, the crop loaders.

The recipe is appendix C.2's with Models Genesis' downstream callbacks: Adam (β 0.9/0.999) at the task's
``finetune3d.<task>.lr``, ReduceLROnPlateau on the validation loss (``lr_factor``, ``lr_patience``,
``min_lr``), early stopping after ``finetune3d.<task>.patience`` epochs without a lower validation loss,
and the best-validation weights scored on the test split.

Weights load with :func:`dira.models.unet3d.load_released` and ``skip_heads``: an encoder export or a whole
U-Net (ours, or the released Genesis / TransVW files) into the U-Net or the encoder classifier, the
modules on one side only (the decoder for a classifier, the heads) recorded in ``metrics.json``. Batches
and weights are kept ``channels_last_3d``: the same numbers, and about a quarter faster on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dira.data.augment3d import Augmentation3D
from dira.data.cache import SplitCache
from dira.data.crop_datasets import CropDataset
from dira.errors import InputError
from dira.models.unet3d import ENCODER_NAMES, POOLS, UNet3D, UNet3DClassifier, load_released
from dira.train.finetune.fractions import select_training
from dira.train.finetune.loop import Criterion, FitResult, Predict, fit, make_loader

SPLITS = ("train", "val", "test")


def channels_last(images: torch.Tensor) -> torch.Tensor:
    return images.to(memory_format=torch.channels_last_3d)


def build_volume_model(kind: str, model3d: dict[str, Any], weights: Path | None,
                       device: torch.device) -> tuple[nn.Module, dict[str, list[str]] | None]:
    """UNet3D(1) for ``kind`` 'segmentation', UNet3DClassifier(1) for 'classification', from ``weights`` when
    given; also what the load skipped (None from random)."""
    cls = UNet3D if kind == "segmentation" else UNet3DClassifier
    model = cls(1, 1, base_width=model3d["base_width"], batch_stats_in_eval=model3d["batch_stats_in_eval"])
    loaded = None
    if weights is not None:
        skipped = load_released(model, weights, skip_heads=True)
        no_encoder = [name for name in skipped.fresh if name in ENCODER_NAMES]
        if no_encoder:  # a file of heads only would "load" and leave the whole network random
            raise InputError(f"{weights}: holds no weights for the encoder levels {', '.join(no_encoder)} of the "
                             f"3D {type(model).__name__}")
        loaded = {"dropped": skipped.dropped, "fresh": skipped.fresh}
    return model.to(device=device, memory_format=torch.channels_last_3d), loaded


def optimizer_and_scheduler(model: nn.Module, *, lr: float, finetune3d: dict[str, Any]) -> tuple[Any, Any]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=finetune3d["lr_factor"], patience=finetune3d["lr_patience"],
        min_lr=finetune3d["min_lr"])
    return optimizer, scheduler


def augmentation(finetune3d: dict[str, Any]) -> Augmentation3D:
    return Augmentation3D(**finetune3d["augmentation"])


def modality_channel(path: Path, modality: str) -> int:
    """Index of ``modality`` among the channels a multi-channel cache names (``intensity.channels``)."""
    cache = SplitCache(path)
    try:
        channels = (cache.attrs.get("intensity") or {}).get("channels")
    finally:
        cache.close()
    if not isinstance(channels, list):
        raise InputError(f"{path}: names no channels (intensity.channels); cannot select the modality '{modality}'")
    if modality not in channels:
        raise InputError(f"{path}: its channels are {channels}, not '{modality}'")
    return channels.index(modality)


def check_crop_shape(datasets: dict[str, CropDataset]) -> tuple[int, int, int]:
    """The one (z, y, x) shape of the splits' rows, each side divisible by the U-Net's 2^3 pooling."""
    shapes = {split: ds.spatial_shape for split, ds in datasets.items()}
    if len(set(shapes.values())) != 1:
        raise InputError(f"{next(iter(datasets.values())).path.parent}: the splits' crops differ in shape {shapes}")
    shape = next(iter(shapes.values()))
    if any(side % 2**POOLS for side in shape):
        raise InputError(f"{datasets['train'].path}: crops of (z, y, x) {shape}; the 3D U-Net needs every side "
                         f"divisible by {2**POOLS} (datasets.<name>.crop_shape)")
    return shape


def crop_splits(data_dir: Path, files: tuple[str, ...], *, target: str, channel: int | None,
                finetune3d: dict[str, Any]) -> dict[str, CropDataset]:
    """The crop splits among ``files`` (train first, augmented; then val and, where it is crops, test)."""
    datasets = {}
    for split, name in zip(SPLITS, files, strict=False):
        datasets[split] = CropDataset(data_dir / name, target=target, channel=channel,
                                      augmentation=augmentation(finetune3d) if split == "train" else None)
        if len(datasets[split]) < (2 if split == "train" else 1):
            raise InputError(f"{datasets[split].path}: too few crops ({len(datasets[split])}) to fine-tune")
    return datasets


def loaders(datasets: dict[str, CropDataset], *, fraction: float, fraction_seed: int | None, batch_size: int,
            num_workers: int, device: torch.device,
            seed: int) -> tuple[dict[str, torch.utils.data.DataLoader], dict[str, Any]]:
    """Seeded loaders of the splits, the training split restricted to its label fraction, and that record."""
    train, subset = select_training(datasets["train"], datasets["train"].ids, fraction, fraction_seed,
                                    source=str(datasets["train"].path))
    sets = {**datasets, "train": train}
    return {split: make_loader(ds, batch_size=batch_size, num_workers=num_workers, device=device,
                               train=split == "train", seed=seed) for split, ds in sets.items()}, subset


def task_max_epochs(finetune3d: dict[str, Any], task: str) -> int:
    """The task's own epoch bound (``finetune3d.<task>.max_epochs``), else the section's shared one."""
    own = finetune3d[task]["max_epochs"]
    return own if own is not None else finetune3d["max_epochs"]


@dataclass
class TrainedVolumeModel:
    """What both 3D runners score and record: the best-validation model, its loaders and the training record."""

    model: nn.Module
    loaded: dict[str, list[str]] | None
    result: FitResult
    batches: dict[str, torch.utils.data.DataLoader]
    subset: dict[str, Any]


def train_volume_model(kind: str, task: str, datasets: dict[str, CropDataset], *, weights: Path | None, seed: int,
                       config: dict[str, Any], device: torch.device, fraction: float, criterion: Criterion,
                       val_metric: tuple[str, Callable], predict: Predict, desc: str) -> TrainedVolumeModel:
    """The shared 3D recipe: the network from ``weights``, Adam + plateau schedule, seeded loaders, ``fit``; the
    model is left holding its best-validation weights."""
    ft3d = config["finetune3d"]
    settings = ft3d[task]
    model, loaded = build_volume_model(kind, config["model3d"], weights, device)
    optimizer, scheduler = optimizer_and_scheduler(model, lr=settings["lr"], finetune3d=ft3d)
    fraction_seed = config["finetune"]["fraction_seed"] if fraction < 1 else None
    batches, subset = loaders(datasets, fraction=fraction, fraction_seed=fraction_seed,
                              batch_size=settings["batch_size"], num_workers=ft3d["num_workers"], device=device,
                              seed=seed)
    result = fit(model, batches["train"], batches["val"], criterion, optimizer, scheduler,
                 max_epochs=task_max_epochs(ft3d, task), patience=settings["patience"], device=device,
                 val_metric=val_metric, desc=desc, predict=predict, inputs=channels_last)
    model.load_state_dict(result.best_state)
    return TrainedVolumeModel(model, loaded, result, batches, subset)

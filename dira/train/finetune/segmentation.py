"""Segmentation fine-tuning (SIIM-ACR, Montgomery): U-Net, soft Dice loss, Adam with per-epoch cosine decay.

The recipe is the appendix's (C.2) and BenchmarkTransferLearning's: Adam (β 0.9/0.999) at
``finetune.segmentation.lr``, lr·(1 + cos(π·epoch/T))/2 over T = ``max_epochs``, early stopping on the
validation loss, the best-validation weights scored on the test split. The U-Net starts from a whole
pre-trained U-Net (DiRA's encoder and decoder), from an encoder only, or from scratch.

The test score is the mean per-image Dice of the masks binarised at 0.5 (an empty prediction of an empty
truth scores 1), at ``model.input_size`` (splits cached at another size are resized when opened).
``metrics.json`` adds its spread, the split into images with and without a finding (SIIM-ACR is mostly
empty), and the benchmark code's pooled Dice for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dira.data.segmentation import SegmentationDataset, segmentation_train_transform
from dira.errors import InputError
from dira.eval.metrics import dice_per_image, mean_dice, pooled_dice, score_predictions
from dira.losses.dice import soft_dice_loss
from dira.models.segmentation import build_segmentation_model
from dira.train.finetune.fractions import select_training
from dira.train.finetune.loop import evaluate, fit, make_loader
from dira.train.finetune.outputs import finite_or_none, run_fields, write_run
from dira.train.finetune.tasks import SegmentationTask

SPLITS = ("train", "val", "test")
THRESHOLD = 0.5


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Soft Dice of the sigmoid of the U-Net's single output channel against (N, H, W) masks."""
    return soft_dice_loss(torch.sigmoid(logits[:, 0]), masks)


def binary_masks(logits: torch.Tensor) -> torch.Tensor:
    """The evaluated prediction: probability above 0.5, as uint8 (N, H, W)."""
    return (torch.sigmoid(logits[:, 0]) > THRESHOLD).to(torch.uint8)


def open_segmentation_splits(data_dir: Path, input_size: int) -> dict[str, SegmentationDataset]:
    """The three splits at ``input_size``, checked to share one cache size."""
    splits = {}
    for split in SPLITS:
        dataset = SegmentationDataset(data_dir / f"{split}.h5", input_size)
        if len(dataset) < (2 if split == "train" else 1):
            raise InputError(f"{dataset.path}: too few images ({len(dataset)}) to fine-tune")
        splits[split] = dataset
    sizes = {split: ds.cache_size for split, ds in splits.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(f"{data_dir}: the splits have different image sizes {sizes}")
    splits["train"].transform = segmentation_train_transform(input_size)
    return splits


def dice_summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | int | None]:
    """Spread of the per-image Dice, and its mean over images with and without a finding."""
    dice = dice_per_image(y_true, y_pred)
    has_finding = y_true.reshape(len(y_true), -1).any(axis=1)
    quartiles = np.percentile(dice, [25, 50, 75])
    return {
        "std": float(dice.std(ddof=1)) if dice.size > 1 else None, "min": float(dice.min()),
        "q25": float(quartiles[0]), "median": float(quartiles[1]), "q75": float(quartiles[2]),
        "max": float(dice.max()),
        "n_with_finding": int(has_finding.sum()), "n_without_finding": int((~has_finding).sum()),
        "mean_with_finding": float(dice[has_finding].mean()) if has_finding.any() else None,
        "mean_without_finding": float(dice[~has_finding].mean()) if (~has_finding).any() else None,
        "pooled_dice": pooled_dice(y_true, y_pred),
    }


def finetune_segmentation(task: SegmentationTask, data_dir: Path, init: str, weights: Path | None,
                          seed: int, out_dir: Path, config: dict, device: torch.device,
                          fraction: float) -> None:
    ft, seg = config["finetune"], config["finetune"]["segmentation"]
    splits = open_segmentation_splits(data_dir, config["model"]["input_size"])
    train_set, subset = select_training(splits["train"], splits["train"].ids, fraction,
                                        ft["fraction_seed"] if fraction < 1 else None,
                                        source=str(splits["train"].path))
    model, loaded = build_segmentation_model(config["model"]["backbone"], config["model"]["decoder_channels"],
                                             weights)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=seg["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=seg["max_epochs"])
    loaders = {split: make_loader(ds, batch_size=seg["batch_size"], num_workers=ft["num_workers"],
                                  device=device, train=split == "train", seed=seed)
               for split, ds in {**splits, "train": train_set}.items()}
    result = fit(model, loaders["train"], loaders["val"], segmentation_loss, optimizer, scheduler,
                 max_epochs=seg["max_epochs"], patience=seg["patience"], device=device,
                 val_metric=(task.metric, mean_dice), predict=binary_masks,
                 desc=f"{task.name} {init} seed{seed}")

    model.load_state_dict(result.best_state)
    test = splits["test"]
    _, _, y_pred = evaluate(model, loaders["test"], segmentation_loss, device, predict=binary_masks)
    predictions = {"ids": np.asarray(test.ids, dtype=str), "y_true": test.masks, "y_pred": y_pred}
    # Score exactly the arrays that are saved, so the tables can recompute the same number.
    value = score_predictions(task.metric, predictions)
    metrics = {
        "task": task.name, "init": init, "seed": seed, "metric": task.metric, "value": value,
        "per_image": {k: finite_or_none(v) if v is not None else None
                      for k, v in dice_summary(test.masks, y_pred).items()},
        "threshold": THRESHOLD, "image_size": test.image_size, "cache_size": test.cache_size,
        "weights_loaded": loaded,
        **subset, "n_val": len(splits["val"]), "n_test": len(test),
        **run_fields(result, weights=weights, device=device, config=config, task=task.name, fraction=fraction),
    }
    write_run(out_dir, predictions, metrics, result.best_state)
    tqdm.write(f"{task.name} {init} seed{seed}: test {task.metric} {value:.4f} "
               f"(best epoch {result.best_epoch} of {len(result.history)})")

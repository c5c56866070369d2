"""3D segmentation (LIDC nodules, LiTS liver, BraTS whole tumour: Models Genesis' NCS, LCS, BMS).

The whole 3D U-Net (``UNet3D(1)``) is trained on crops or patches with Models Genesis' loss, 1 − soft Dice
(smooth 1) of the sigmoid pooled over the batch, under the shared 3D recipe (:mod:`dira.train.finetune.volumes`).
The score is Models Genesis' IoU: the prediction binarised at 0.5 and the voxels pooled over the whole test
array; the pooled Dice is reported beside it.

- LIDC: the test split is crops, one around each nodule (the paper's test set is exactly those), scored
  as they are.
- LiTS, BraTS: the test split is whole volumes, segmented by a sliding window
  (:mod:`dira.eval.sliding_window`, overlap ``finetune3d.window_overlap``) and pooled over all their voxels,
  since the paper segments the organ / tumour in the scan, not in patches drawn around it. ``predictions.npz``
  holds the volumes flattened and concatenated (:func:`dira.eval.metrics.pack_volumes`); ``metrics.json``
  adds each volume's IoU and Dice.
- BraTS rows carry four MR channels; the pre-trained nets take one, so the run uses
  ``finetune3d.brats.modality`` (FLAIR by default, the modality the whole tumour shows in best).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dira.data.crop_datasets import case_ids, read_test_volumes
from dira.eval.metrics import iou, pack_volumes, score_predictions, unpack_volumes, voxel_dice
from dira.eval.sliding_window import sliding_window_probabilities
from dira.losses.dice import soft_dice_loss
from dira.train.finetune.loop import evaluate
from dira.train.finetune.outputs import run_fields, write_run
from dira.train.finetune.tasks import VolumeSegmentationTask
from dira.train.finetune.volumes import (
    channels_last,
    check_crop_shape,
    crop_splits,
    modality_channel,
    train_volume_model,
)

THRESHOLD = 0.5
PAD_VALUE = 0.0  # the preparers' background: the HU window's lower end scaled to 0 (CT), 0 outside the brain (MR)


def dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 − soft Dice (smooth 1) of the sigmoid of the single output channel against the (B, z, y, x) masks."""
    return soft_dice_loss(torch.sigmoid(logits[:, 0]), masks)


def binary_masks(logits: torch.Tensor) -> torch.Tensor:
    """The evaluated prediction: probability above 0.5, as uint8 (B, z, y, x)."""
    return (torch.sigmoid(logits[:, 0]) > THRESHOLD).to(torch.uint8)


@torch.no_grad()
def segment_volumes(model: torch.nn.Module, path: Path, channel: int | None, *, window: tuple[int, int, int],
                    overlap: float, batch_size: int, device: torch.device) -> dict[str, np.ndarray]:
    """Sliding-window masks of every volume of ``test_volumes.h5``, packed with their truths."""
    model.eval()

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(channels_last(batch))[:, 0])

    ids, truths, preds = [], [], []
    for case in tqdm(read_test_volumes(path, channel), total=len(case_ids(path)), desc=f"segment {path.name}",
                     unit="volume", mininterval=5):
        probs = sliding_window_probabilities(probabilities, case.image, window=window, overlap=overlap,
                                             batch_size=batch_size, device=device, pad_value=PAD_VALUE)
        ids.append(case.id)
        truths.append(case.mask)
        preds.append((probs > THRESHOLD).astype(np.uint8))
    return pack_volumes(ids, truths, preds)


def per_volume(predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {case: {"iou": iou(truth, pred), "dice": voxel_dice(truth, pred), "voxels": int(truth.size),
                   "true_voxels": int(truth.sum()), "predicted_voxels": int(pred.sum())}
            for case, truth, pred in unpack_volumes(predictions)}


def finetune_volume_segmentation(task: VolumeSegmentationTask, data_dir: Path, init: str, weights: Path | None,
                                 seed: int, out_dir: Path, config: dict, device: torch.device,
                                 fraction: float) -> None:
    ft3d, data_dir = config["finetune3d"], Path(data_dir)
    settings = ft3d[task.name]
    channel = modality_channel(data_dir / task.files[0], settings["modality"]) if task.multichannel else None
    crop_files = task.files[:2] if task.test_volumes else task.files
    datasets = crop_splits(data_dir, crop_files, target="masks", channel=channel, finetune3d=ft3d)
    window = check_crop_shape(datasets)
    trained = train_volume_model("segmentation", task.name, datasets, weights=weights, seed=seed, config=config,
                                 device=device, fraction=fraction, criterion=dice_loss,
                                 val_metric=(task.metric, iou), predict=binary_masks,
                                 desc=f"{task.name} {init} seed{seed}")
    model, loaded, result, subset, batches = (trained.model, trained.loaded, trained.result, trained.subset,
                                              trained.batches)
    extra: dict[str, Any]
    if task.test_volumes:
        predictions = segment_volumes(model, data_dir / task.files[2], channel, window=window,
                                      overlap=ft3d["window_overlap"], batch_size=settings["batch_size"],
                                      device=device)
        extra = {"test_volumes": per_volume(predictions), "window_overlap": ft3d["window_overlap"]}
    else:
        _, y_true, y_pred = evaluate(model, batches["test"], dice_loss, device, predict=binary_masks,
                                     inputs=channels_last)
        predictions = {"ids": np.asarray(datasets["test"].ids, dtype=str), "y_true": y_true.astype(np.uint8),
                       "y_pred": y_pred}
        extra = {}
    # Score exactly the arrays that are saved, so the tables can recompute the same number.
    value = score_predictions(task.metric, predictions)
    metrics = {
        "task": task.name, "init": init, "seed": seed, "metric": task.metric, "value": value,
        "dice": voxel_dice(predictions["y_true"], predictions["y_pred"]), "threshold": THRESHOLD,
        "scored_on": "whole test volumes (sliding window)" if task.test_volumes else "test crops",
        "crop_shape": list(window), "weights_loaded": loaded,
        **({"modality": settings["modality"]} if task.multichannel else {}),
        **subset, "n_val": len(datasets["val"]), "n_test": len(predictions["ids"]), **extra,
        **run_fields(result, weights=weights, device=device, config=config, task=task.name, fraction=fraction),
    }
    write_run(out_dir, predictions, metrics, result.best_state)
    tqdm.write(f"{task.name} {init} seed{seed}: test {task.metric} {value:.4f} "
               f"(best epoch {result.best_epoch} of {len(result.history)})")

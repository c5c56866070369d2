"""3D candidate classification (LUNA16 nodules, PE emboli: Models Genesis' NCC and ECC): false-positive reduction.

Each candidate crop gets one logit from the 3D U-Net's encoder and the Models Genesis head
(``UNet3DClassifier(1)``), trained with binary cross-entropy (Models Genesis' BCE) under the shared 3D recipe
(:mod:`dira.train.finetune.volumes`). The test score is the ROC AUC of the sigmoid scores over the test
candidates; ``predictions.npz`` keeps them as one-column arrays (``y_true`` uint8, ``y_score`` float32,
``class_names`` the positive class), the layout the 2D classification tasks and the tables read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dira.errors import InputError
from dira.eval.metrics import mean_auc, score_predictions
from dira.train.finetune.loop import evaluate, sigmoid_scores
from dira.train.finetune.outputs import run_fields, write_run
from dira.train.finetune.tasks import VolumeClassificationTask
from dira.train.finetune.volumes import channels_last, check_crop_shape, crop_splits, train_volume_model


def candidate_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the (B, 1) logits against the (B, 1) 0/1 labels."""
    return F.binary_cross_entropy_with_logits(logits, targets)


def finetune_volume_classification(task: VolumeClassificationTask, data_dir: Path, init: str, weights: Path | None,
                                   seed: int, out_dir: Path, config: dict, device: torch.device,
                                   fraction: float) -> None:
    datasets = crop_splits(Path(data_dir), task.files, target="labels", channel=None, finetune3d=config["finetune3d"])
    crop_shape = check_crop_shape(datasets)
    test = datasets["test"]
    # Checked before training rather than discovered after it: the test AUC needs both classes.
    if np.unique(test.labels).size != 2:
        raise InputError(f"{test.path}: the test candidates are all of one class; the AUC would be undefined")
    trained = train_volume_model("classification", task.name, datasets, weights=weights, seed=seed, config=config,
                                 device=device, fraction=fraction, criterion=candidate_loss,
                                 val_metric=(task.metric, mean_auc), predict=sigmoid_scores,
                                 desc=f"{task.name} {init} seed{seed}")
    model, loaded, result, subset = trained.model, trained.loaded, trained.result, trained.subset
    _, y_true, y_score = evaluate(model, trained.batches["test"], candidate_loss, device, predict=sigmoid_scores,
                                  inputs=channels_last)
    predictions = {"ids": np.asarray(test.ids, dtype=str), "y_true": y_true.astype(np.uint8),
                   "y_score": y_score.astype(np.float32), "class_names": np.asarray([task.positive], dtype=str)}
    # Score exactly the arrays that are saved, so the tables can recompute the same number.
    value = score_predictions(task.metric, predictions)
    metrics = {
        "task": task.name, "init": init, "seed": seed, "metric": task.metric, "value": value,
        "n_test_positive": int(predictions["y_true"].sum()), "n_test_negative": int((predictions["y_true"] == 0).sum()),
        "crop_shape": list(crop_shape), "weights_loaded": loaded,
        **subset, "n_val": len(datasets["val"]), "n_test": len(test),
        **run_fields(result, weights=weights, device=device, config=config, task=task.name, fraction=fraction),
    }
    write_run(out_dir, predictions, metrics, result.best_state)
    tqdm.write(f"{task.name} {init} seed{seed}: test {task.metric} {value:.4f} "
               f"(best epoch {result.best_epoch} of {len(result.history)})")

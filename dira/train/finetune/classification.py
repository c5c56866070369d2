"""Classification fine-tuning (ChestX-ray14, CheXpert): ResNet + linear head, BCE, Adam, ReduceLROnPlateau.

The recipe follows BenchmarkTransferLearning: Adam (β 0.9/0.999), ReduceLROnPlateau and early stopping
on the validation loss, the best-validation weights scored on the test split. Training crops
(RandomResizedCrop to ``model.input_size``) are cut from the cached image (``datasets.<name>.cache_size``);
validation resizes to ``finetune.eval_resize`` and takes the centre crop; the test split takes the centre
crop or the ten crops (``finetune.test_crops``), the sigmoid scores averaged over them as the benchmark's
TenCrop does. A deliberate difference: early stopping ends after ``patience`` epochs without a lower
validation loss (the benchmark waits one more).

CheXpert trains on all 14 observations, its uncertain training labels replaced by the configured policy
each time a sample is drawn; validation skips uncertain entries (see ``certain_targets``), and the test
AUC is the mean over the five competition observations, which are all that ``predictions.npz`` keeps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dira.data.classification import (
    ClassificationDataset,
    EvaluationBatch,
    certain_targets,
    network_input,
    train_transform,
    uncertainty_targets,
)
from dira.data.sources.chexpert import BLANK, NEGATIVE, POSITIVE, UNCERTAIN
from dira.errors import InputError
from dira.eval.metrics import mean_auc, per_class_auc, score_predictions
from dira.models.classifier import build_classifier
from dira.train.finetune.fractions import select_training
from dira.train.finetune.loop import fit, make_loader
from dira.train.finetune.outputs import finite_or_none, run_fields, write_run
from dira.train.finetune.tasks import ClassificationTask

SPLITS = ("train", "val", "test")


def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the known targets; nan targets (uncertain in validation) are left out."""
    known = ~torch.isnan(targets)
    return F.binary_cross_entropy_with_logits(logits[known], targets[known])


def open_classification_splits(task: ClassificationTask, data_dir: Path, finetune_cfg: dict, input_size: int,
                               policy: str | None) -> dict[str, ClassificationDataset]:
    """The three splits, checked against the task's labels, codes and each other's cache size."""
    allowed = (POSITIVE, NEGATIVE, UNCERTAIN, BLANK) if task.uncertain_labels else (POSITIVE, NEGATIVE)
    splits = {}
    for split in SPLITS:
        path = data_dir / f"{split}.h5"
        dataset = ClassificationDataset(path)
        if tuple(dataset.label_names) != task.label_names:
            raise InputError(f"{path}: label_names {dataset.label_names} differ from the "
                             f"{task.name} labels {list(task.label_names)}")
        if not np.isin(dataset.labels, allowed).all():
            foreign = sorted(int(v) for v in set(np.unique(dataset.labels)) - set(allowed))
            raise InputError(f"{path}: labels hold values {foreign} outside the {task.name} codes {list(allowed)}")
        if len(dataset) < (2 if split == "train" else 1):
            raise InputError(f"{path}: too few images ({len(dataset)}) to fine-tune")
        if task.uncertain_labels:
            dataset.target_fn = uncertainty_targets(policy) if split == "train" else certain_targets
        if split == "train":
            dataset.transform = train_transform(input_size, finetune_cfg["crop_scale"],
                                                finetune_cfg["flip_prob"], finetune_cfg["rotation"])
        splits[split] = dataset
    test = splits["test"]
    scored = test.labels[:, task.scored_columns]
    if (scored == UNCERTAIN).any():
        raise InputError(f"{test.path}: uncertain labels in the evaluated observations; the test split must "
                         "be labelled with certainty (CheXpert's valid or test set)")
    # Checked before training rather than discovered after it: the test AUC needs one scorable class.
    if not any(np.unique(column).size == 2 for column in binary_labels(scored).T):
        raise InputError(f"{test.path}: no evaluated class has both positive and negative labels; "
                         "the test AUC would be undefined")
    sizes = {split: ds.cache_size for split, ds in splits.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(f"{data_dir}: the splits have different image sizes {sizes}")
    return splits


def evaluation_batches(finetune_cfg: dict, input_size: int) -> dict[str, EvaluationBatch]:
    """The collates of validation (one centre crop) and test (``finetune.test_crops``)."""
    if finetune_cfg["eval_resize"] < input_size:
        raise InputError(f"finetune.eval_resize ({finetune_cfg['eval_resize']}) is smaller than model.input_size "
                         f"({input_size}): its crops would not fit")
    return {"val": EvaluationBatch(finetune_cfg["eval_resize"], input_size, "center"),
            "test": EvaluationBatch(finetune_cfg["eval_resize"], input_size, finetune_cfg["test_crops"])}


@torch.no_grad()
def crop_averaged_scores(model: torch.nn.Module, loader: torch.utils.data.DataLoader,
                         device: torch.device) -> np.ndarray:
    """Sigmoid scores (N, C) of each image, averaged over its views (the loader's B·V crops per B targets)."""
    model.eval()
    scores = []
    for images, targets in loader:
        logits = model(network_input(images.to(device, non_blocking=True)))
        views = logits.shape[0] // targets.shape[0]
        scores.append(torch.sigmoid(logits.float()).view(targets.shape[0], views, -1).mean(dim=1).cpu())
    return torch.cat(scores).numpy()


def binary_labels(labels: np.ndarray) -> np.ndarray:
    """Certain labels as uint8 0/1: blank (not mentioned) counts as negative, as in training."""
    return (labels == POSITIVE).astype(np.uint8)


def finetune_classification(task: ClassificationTask, data_dir: Path, init: str, weights: Path | None,
                            seed: int, out_dir: Path, config: dict, device: torch.device,
                            fraction: float) -> None:
    ft = config["finetune"]
    policy = config["datasets"][task.name]["uncertainty"] if task.uncertain_labels else None
    input_size = config["model"]["input_size"]
    collates = evaluation_batches(ft, input_size)
    splits = open_classification_splits(task, data_dir, ft, input_size, policy)
    train_set, subset = select_training(splits["train"], splits["train"].ids, fraction,
                                        ft["fraction_seed"] if fraction < 1 else None,
                                        source=str(splits["train"].path))
    model = build_classifier(config["model"]["backbone"], len(task.label_names), weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=ft["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=ft["lr_factor"], patience=ft["lr_patience"])
    loaders = {split: make_loader(ds, batch_size=ft["batch_size"], num_workers=ft["num_workers"], device=device,
                                  train=split == "train", seed=seed, collate_fn=collates.get(split))
               for split, ds in {**splits, "train": train_set}.items()}
    columns = task.scored_columns
    result = fit(model, loaders["train"], loaders["val"], masked_bce_with_logits, optimizer, scheduler,
                 max_epochs=ft["max_epochs"], patience=ft["patience"], device=device,
                 val_metric=(task.metric, lambda y, s: mean_auc(y[:, columns], s[:, columns])),
                 desc=f"{task.name} {init} seed{seed}", inputs=network_input)

    model.load_state_dict(result.best_state)
    test = splits["test"]
    y_score = crop_averaged_scores(model, loaders["test"], device)
    predictions = {
        "ids": np.asarray(test.ids, dtype=str),
        "y_true": binary_labels(test.labels[:, columns]),
        "y_score": y_score[:, columns].astype(np.float32),
        "class_names": np.asarray(task.scored_labels, dtype=str),
    }
    # Score exactly the arrays that are saved, so the tables can recompute the same number.
    value = score_predictions(task.metric, predictions)
    aucs = per_class_auc(predictions["y_true"], predictions["y_score"])
    metrics = {
        "task": task.name, "init": init, "seed": seed, "metric": task.metric, "value": value,
        "per_class": {name: finite_or_none(a) for name, a in zip(task.scored_labels, aucs, strict=True)},
        "classes_without_auc": [n for n, a in zip(task.scored_labels, aucs, strict=True) if not np.isfinite(a)],
        "trained_classes": list(task.label_names),
        **({"uncertainty": policy} if policy else {}),
        **subset, "n_val": len(splits["val"]), "n_test": len(test),
        "cache_size": test.cache_size, "test_crops": ft["test_crops"],
        **run_fields(result, weights=weights, device=device, config=config, task=task.name, fraction=fraction),
    }
    write_run(out_dir, predictions, metrics, result.best_state)
    tqdm.write(f"{task.name} {init} seed{seed}: test {task.metric} {value:.4f} "
               f"(best epoch {result.best_epoch} of {len(result.history)})")

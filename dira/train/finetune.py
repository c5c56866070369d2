"""Fine-tuning one initialisation on one downstream task with one seed (appendix C.2).

Tasks are looked up in :data:`TASKS` and run by the runner registered for their type in
:data:`RUNNERS`; a new task of a known type (CheXpert) is one registry entry, a new type
(segmentation) one task class and one runner that reuses :func:`fit`. The recipe follows
BenchmarkTransferLearning: Adam (β 0.9/0.999), ReduceLROnPlateau and early stopping on the validation
loss, the best-validation weights scored on the test split.

Deliberate differences from the benchmark code: early stopping ends after ``patience`` epochs without
a lower validation loss (the benchmark waits one more), and the test split is scored on the cached
images as they are, without the benchmark's ten-crop averaging.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dira.data.classification import ClassificationDataset, train_transform
from dira.data.labels import CHESTXRAY14_LABELS
from dira.errors import InputError
from dira.eval.metrics import mean_auc, per_class_auc, score_predictions
from dira.io import atomic_path, write_json
from dira.models.classifier import build_classifier
from dira.provenance import provenance
from dira.train.runtime import configure_threads, resolve_device, seed_everything

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClassificationTask:
    """Multi-label classification of a cache with ``labels``, scored by the mean per-class ROC AUC."""

    name: str
    label_names: tuple[str, ...]
    metric: str = "auc"


TASKS: dict[str, ClassificationTask] = {
    "chestxray14": ClassificationTask("chestxray14", CHESTXRAY14_LABELS),
}


def finetune(task: str, data_dir: Path, init: str, weights: Path | None, seed: int, out_dir: Path,
             config: dict) -> None:
    """Fine-tune, then write ``predictions.npz`` and (last, as the completion marker) ``metrics.json``."""
    if task not in TASKS:
        raise InputError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    check_init(init, weights)
    spec = TASKS[task]
    device = resolve_device(config["device"])
    configure_threads(config["threads"])
    seed_everything(seed)
    RUNNERS[type(spec)](spec, Path(data_dir), init, weights, seed, Path(out_dir), config, device)


def check_init(init: str, weights: Path | None) -> None:
    if init == "random" and weights is not None:
        raise InputError(f"{weights}: init 'random' takes no encoder weights")
    if init != "random" and weights is None:
        raise InputError(f"init '{init}' needs encoder weights (--weights .../encoder.pt)")


# --------------------------------------------------------------------------- the training loop


class EarlyStopping:
    """Tracks the best (strictly lowest) validation loss and the epochs since it was reached."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0

    def step(self, epoch: int, val_loss: float) -> bool:
        """Record one epoch; True when it is the new best (a nan loss never is)."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)


def train_one_epoch(model: nn.Module, loader: DataLoader, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    """One pass over the training split; returns the sample-weighted mean loss."""
    model.train()
    total, count = 0.0, 0
    for images, targets in loader:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(images), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(images)
        count += len(images)
    return total / count


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, criterion: nn.Module,
             device: torch.device) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean loss, targets, sigmoid probabilities) over a split, in the loader's order."""
    model.eval()
    total, count = 0.0, 0
    all_targets, all_scores = [], []
    for images, targets in loader:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        logits = model(images)
        total += criterion(logits, targets).item() * len(images)
        count += len(images)
        all_targets.append(targets.cpu())
        all_scores.append(torch.sigmoid(logits).float().cpu())
    return total / count, torch.cat(all_targets).numpy(), torch.cat(all_scores).numpy()


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, criterion: nn.Module,
        optimizer: torch.optim.Optimizer, scheduler: Any, *, max_epochs: int, patience: int,
        device: torch.device, val_metric: tuple[str, Callable[[np.ndarray, np.ndarray], float]],
        desc: str) -> FitResult:
    """Train until early stopping; keep the weights of the lowest validation loss.

    ``scheduler`` is stepped once per epoch, with the validation loss when it is a ReduceLROnPlateau.
    """
    metric_name, metric_fn = val_metric
    stopper = EarlyStopping(patience)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    progress = tqdm(range(1, max_epochs + 1), desc=desc, unit="epoch", dynamic_ncols=True)
    for epoch in progress:
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(model, train_loader, criterion, optimizer, device)
        val_loss, val_true, val_score = evaluate(model, val_loader, criterion, device)
        val_value = metric_fn(val_true, val_score)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        else:
            scheduler.step()
        if stopper.step(epoch, val_loss):
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
                        f"val_{metric_name}": val_value})
        progress.set_postfix({"train_loss": f"{train_loss:.4f}", "val_loss": f"{val_loss:.4f}",
                              f"val_{metric_name}": f"{val_value:.4f}", "best_epoch": stopper.best_epoch})
        if stopper.should_stop:
            break
    progress.close()
    if best_state is None:
        raise RuntimeError(f"{desc}: the validation loss was never finite; training diverged")
    return FitResult(best_state, stopper.best_epoch, stopper.best_loss, history)


def make_loader(dataset: Dataset, finetune_cfg: dict, device: torch.device, *, train: bool,
                seed: int) -> DataLoader:
    """Seeded loader: the shuffling order and the workers' augmentation seeds follow ``seed``.

    Runs repeat exactly for the same seed and ``num_workers``; a different worker count draws the
    augmentations from other generators, so it changes the run like another seed would.
    """
    workers = finetune_cfg["num_workers"]
    batch_size = finetune_cfg["batch_size"]
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train, num_workers=workers,
        generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        # A last batch of one image would make batch norm fail in training mode.
        drop_last=train and len(dataset) % batch_size == 1,
    )


# --------------------------------------------------------------------------- classification


def open_classification_splits(task: ClassificationTask, data_dir: Path,
                               finetune_cfg: dict) -> dict[str, ClassificationDataset]:
    """The three splits, checked against the task's label vocabulary and each other's image size."""
    splits = {}
    for split in SPLITS:
        path = data_dir / f"{split}.h5"
        dataset = ClassificationDataset(path)
        if tuple(dataset.label_names) != task.label_names:
            raise InputError(f"{path}: label_names {dataset.label_names} differ from the "
                             f"{task.name} labels {list(task.label_names)}")
        if len(dataset) < (2 if split == "train" else 1):
            raise InputError(f"{path}: too few images ({len(dataset)}) to fine-tune")
        if split == "train":
            dataset.transform = train_transform(dataset.image_size, finetune_cfg["crop_scale"],
                                                finetune_cfg["flip_prob"], finetune_cfg["rotation"])
        splits[split] = dataset
    # Checked before training rather than discovered after it: the test AUC needs one scorable class.
    if not any(np.unique(column).size == 2 for column in splits["test"].labels.T):
        raise InputError(f"{splits['test'].path}: no class has both positive and negative labels; "
                         "the test AUC would be undefined")
    sizes = {split: ds.image_size for split, ds in splits.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(f"{data_dir}: the splits have different image sizes {sizes}")
    return splits


def finetune_classification(task: ClassificationTask, data_dir: Path, init: str, weights: Path | None,
                            seed: int, out_dir: Path, config: dict, device: torch.device) -> None:
    ft = config["finetune"]
    splits = open_classification_splits(task, data_dir, ft)
    model = build_classifier(config["model"]["backbone"], len(task.label_names), weights).to(device)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=ft["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=ft["lr_factor"], patience=ft["lr_patience"])
    loaders = {split: make_loader(ds, ft, device, train=split == "train", seed=seed)
               for split, ds in splits.items()}
    result = fit(model, loaders["train"], loaders["val"], criterion, optimizer, scheduler,
                 max_epochs=ft["max_epochs"], patience=ft["patience"], device=device,
                 val_metric=(task.metric, mean_auc), desc=f"{task.name} {init} seed{seed}")

    model.load_state_dict(result.best_state)
    test = splits["test"]
    _, _, y_score = evaluate(model, loaders["test"], criterion, device)
    predictions = {
        "ids": np.asarray(test.ids, dtype=str),
        "y_true": test.labels.astype(np.uint8),
        "y_score": y_score.astype(np.float32),
        "class_names": np.asarray(task.label_names, dtype=str),
    }
    # Score exactly the arrays that are saved, so the tables can recompute the same number.
    value = score_predictions(task.metric, predictions)
    aucs = per_class_auc(predictions["y_true"], predictions["y_score"])
    metrics = {
        "task": task.name, "init": init, "seed": seed, "metric": task.metric, "value": value,
        "per_class": {name: _finite_or_none(a) for name, a in zip(task.label_names, aucs, strict=True)},
        "classes_without_auc": [n for n, a in zip(task.label_names, aucs, strict=True) if not np.isfinite(a)],
        "epochs_trained": len(result.history), "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        **{f"n_{split}": len(ds) for split, ds in splits.items()},
        "weights": str(weights) if weights is not None else None, "device_used": str(device),
        "history": [{k: _finite_or_none(v) for k, v in row.items()} for row in result.history],
        "provenance": provenance({key: config[key] for key in ("device", "threads", "model", "finetune")}),
    }
    save_predictions(out_dir / "predictions.npz", predictions)
    write_json(out_dir / "metrics.json", metrics)
    tqdm.write(f"{task.name} {init} seed{seed}: test {task.metric} {value:.4f} "
               f"(best epoch {result.best_epoch} of {len(result.history)})")


def save_predictions(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Plain (non-object) arrays only, so the file loads with ``allow_pickle=False``."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _finite_or_none(value: float) -> float | int | None:
    # JSON has no nan; an undefined number is written as null.
    if isinstance(value, int):
        return value
    return float(value) if np.isfinite(value) else None


RUNNERS: dict[type, Callable[..., None]] = {
    ClassificationTask: finetune_classification,
}

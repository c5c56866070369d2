"""The training loop every fine-tuning task shares: epochs, validation, early stopping, seeded loaders.

A task type contributes its criterion, its optimiser and scheduler, ``inputs``: what a batch becomes on the
device before the model sees it (classification loaders carry uint8 crops, made float there), and
``predict``: what each batch's logits are kept as (sigmoid scores for classification, binary masks for
segmentation), so that a validation split of full-size masks is held as uint8, not as float scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Predict = Callable[[torch.Tensor], torch.Tensor]
Inputs = Callable[[torch.Tensor], torch.Tensor]


def as_loaded(images: torch.Tensor) -> torch.Tensor:
    return images


def sigmoid_scores(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits).float()


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


def train_one_epoch(model: nn.Module, loader: DataLoader, criterion: Criterion,
                    optimizer: torch.optim.Optimizer, device: torch.device, inputs: Inputs = as_loaded) -> float:
    """One pass over the training split; returns the sample-weighted mean loss."""
    model.train()
    total, count = 0.0, 0
    for images, targets in loader:
        images, targets = inputs(images.to(device, non_blocking=True)), targets.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(images), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(images)
        count += len(images)
    return total / count


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, criterion: Criterion, device: torch.device,
             predict: Predict = sigmoid_scores, inputs: Inputs = as_loaded) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean loss, targets, ``predict(logits)``) over a split, in the loader's order."""
    model.eval()
    total, count = 0.0, 0
    all_targets, all_outputs = [], []
    for images, targets in loader:
        images, targets = inputs(images.to(device, non_blocking=True)), targets.to(device, non_blocking=True)
        logits = model(images)
        total += criterion(logits, targets).item() * len(images)
        count += len(images)
        all_targets.append(targets.cpu())
        all_outputs.append(predict(logits).cpu())
    return total / count, torch.cat(all_targets).numpy(), torch.cat(all_outputs).numpy()


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, criterion: Criterion,
        optimizer: torch.optim.Optimizer, scheduler: Any, *, max_epochs: int, patience: int,
        device: torch.device, val_metric: tuple[str, Callable[[np.ndarray, np.ndarray], float]],
        desc: str, predict: Predict = sigmoid_scores, inputs: Inputs = as_loaded) -> FitResult:
    """Train until early stopping; keep the weights of the lowest validation loss.

    ``scheduler`` is stepped once per epoch, with the validation loss when it is a ReduceLROnPlateau;
    ``val_metric`` is reported per epoch (targets, ``predict`` outputs) but does not select.
    """
    metric_name, metric_fn = val_metric
    stopper = EarlyStopping(patience)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    progress = tqdm(range(1, max_epochs + 1), desc=desc, unit="epoch", dynamic_ncols=True)
    for epoch in progress:
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(model, train_loader, criterion, optimizer, device, inputs)
        val_loss, val_true, val_output = evaluate(model, val_loader, criterion, device, predict, inputs)
        val_value = metric_fn(val_true, val_output)
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


def make_loader(dataset: Dataset, *, batch_size: int, num_workers: int, device: torch.device, train: bool,
                seed: int, collate_fn: Callable | None = None) -> DataLoader:
    """Seeded loader: the shuffling order and the workers' augmentation seeds follow ``seed``.

    ``collate_fn`` builds batches in the workers (classification's evaluation crops); None stacks the items.

    Runs repeat exactly for the same seed and ``num_workers``; a different worker count draws the
    augmentations from other generators, so it changes the run like another seed would.
    """
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train, num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed), persistent_workers=num_workers > 0, collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        # A last batch of one image after full ones would be a noisy step (and batch norm fails on a single
        # image whose deepest feature map is 1×1); a training set of one image is kept as its only batch.
        drop_last=train and len(dataset) > batch_size and len(dataset) % batch_size == 1,
    )

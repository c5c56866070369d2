"""What every fine-tuning run writes: ``model.pt`` (the best-validation weights, a plain state dict),
``predictions.npz``, then (last, as the completion marker) ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dira.io import atomic_path, save_torch, write_json
from dira.provenance import provenance
from dira.stages import select, stage_keys
from dira.train.finetune.loop import FitResult

MODEL_FILE = "model.pt"


def run_fields(result: FitResult, *, weights: Path | None, device: torch.device, config: dict, task: str,
               fraction: float) -> dict[str, Any]:
    """The training record and provenance shared by every task type's ``metrics.json``.

    The provenance holds exactly the settings the fine-tuning stage read (``dira.stages``), nothing more.
    """
    return {
        "epochs_trained": len(result.history), "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "weights": str(weights) if weights is not None else None, "device_used": str(device),
        "history": [{k: finite_or_none(v) for k, v in row.items()} for row in result.history],
        "provenance": provenance(select(config, stage_keys("finetune", task=task, fraction=fraction < 1))),
    }


def write_run(out_dir: Path, predictions: dict[str, np.ndarray], metrics: dict[str, Any],
              model_state: dict[str, torch.Tensor]) -> None:
    save_torch(out_dir / MODEL_FILE, model_state)
    save_predictions(out_dir / "predictions.npz", predictions)
    write_json(out_dir / "metrics.json", metrics)


def save_predictions(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Plain (non-object) arrays only, so the file loads with ``allow_pickle=False``."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def finite_or_none(value: float) -> float | int | None:
    """JSON has no nan; an undefined number is written as null."""
    if isinstance(value, int):
        return value
    return float(value) if np.isfinite(value) else None

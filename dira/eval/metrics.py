"""Headline metrics of the downstream tasks, as pure functions of saved predictions.

Fine-tuning scores its test predictions with :func:`score_predictions` and the tables recompute the
same number from ``predictions.npz`` with the same call, so every reported value can be re-derived
from files on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn.metrics import roc_auc_score


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC of each column; nan where the column's labels are all one value (AUC undefined)."""
    y_true, y_score = _check_multilabel(y_true, y_score)
    aucs = np.full(y_true.shape[1], np.nan)
    for c in range(y_true.shape[1]):
        if np.unique(y_true[:, c]).size == 2:
            aucs[c] = roc_auc_score(y_true[:, c], y_score[:, c])
    return aucs


def mean_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean AUC over the classes that have one (the ChestX-ray14 benchmark number); nan if none has."""
    return nanmean_or_nan(per_class_auc(y_true, y_score))


def nanmean_or_nan(values: np.ndarray) -> float:
    """Mean of the finite entries, nan (without numpy's empty-slice warning) when there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def _check_multilabel(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"expected y_true and y_score of the same shape (N, C), got {y_true.shape} "
                         f"and {y_score.shape}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must be binary (0/1)")
    return y_true, y_score


# Each headline metric reads the arrays of a predictions.npz; new task types (Dice for segmentation)
# register here so that fine-tuning and the tables keep sharing one definition.
HEADLINE_METRICS: dict[str, Callable[[Mapping[str, np.ndarray]], float]] = {
    "auc": lambda p: mean_auc(p["y_true"], p["y_score"]),
}


def score_predictions(metric: str, predictions: Mapping[str, np.ndarray]) -> float:
    """The task's headline number from the arrays saved in ``predictions.npz``."""
    if metric not in HEADLINE_METRICS:
        raise KeyError(f"unknown metric '{metric}' (known: {', '.join(HEADLINE_METRICS)})")
    return HEADLINE_METRICS[metric](predictions)

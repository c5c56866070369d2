"""Headline metrics of the downstream tasks, as pure functions of saved predictions.

Fine-tuning scores its test predictions with :func:`score_predictions` and the tables recompute the
same number from ``predictions.npz`` with the same call, so every reported value can be re-derived
from files on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC of each column over its known labels; nan where those are all one value (AUC undefined).

    A nan in ``y_true`` marks an unknown label (CheXpert's uncertain validation labels) and leaves that
    entry out of its column's AUC.
    """
    from sklearn.metrics import roc_auc_score  # imported on use: ~1 s that every fine-tuning job paid at start

    y_true, y_score = _check_multilabel(y_true, y_score)
    aucs = np.full(y_true.shape[1], np.nan)
    for c in range(y_true.shape[1]):
        known = ~np.isnan(y_true[:, c]) if y_true.dtype.kind == "f" else slice(None)
        if np.unique(y_true[known, c]).size == 2:
            aucs[c] = roc_auc_score(y_true[known, c], y_score[known, c])
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
    known = y_true[~np.isnan(y_true)] if y_true.dtype.kind == "f" else y_true
    if not np.isin(known, (0, 1)).all():
        raise ValueError("y_true must be binary (0/1, or nan for unknown)")
    return y_true, y_score


def dice_per_image(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Dice 2|T∩P| / (|T| + |P|) of each binary mask pair (N, H, W).

    An empty prediction of an empty truth scores 1.0: most SIIM-ACR images show no pneumothorax, and
    finding nothing there is the right answer, not an undefined one.
    """
    truth, pred = _check_masks(y_true, y_pred)
    intersection = np.count_nonzero(truth & pred, axis=1)
    total = np.count_nonzero(truth, axis=1) + np.count_nonzero(pred, axis=1)
    return np.where(total == 0, 1.0, 2.0 * intersection / np.maximum(total, 1))


def mean_dice(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The segmentation headline: the mean over images of the per-image Dice."""
    return float(dice_per_image(y_true, y_pred).mean())


def pooled_dice(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Dice of all pixels of all images pooled (the benchmark code's number); 1.0 when all are empty."""
    truth, pred = _check_masks(y_true, y_pred)
    total = np.count_nonzero(truth) + np.count_nonzero(pred)
    return 1.0 if total == 0 else float(2.0 * np.count_nonzero(truth & pred) / total)


def _check_masks(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as boolean (N, H·W) after checking shape and that they are binary masks."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 3 or y_true.shape != y_pred.shape or len(y_true) == 0:
        raise ValueError(f"expected y_true and y_pred masks of the same shape (N, H, W) with N > 0, got "
                         f"{y_true.shape} and {y_pred.shape}")
    for name, mask in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{name} must be binary masks (0/1)")
    return y_true.reshape(len(y_true), -1).astype(bool), y_pred.reshape(len(y_pred), -1).astype(bool)


def _binary_voxels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as flat booleans after checking that they are binary masks of one shape (any number of axes)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"expected non-empty y_true and y_pred masks of the same shape, got {y_true.shape} "
                         f"and {y_pred.shape}")
    for name, mask in (("y_true", y_true), ("y_pred", y_pred)):
        # unsigned masks (what the runs save) need only their maximum: isin over 10^9 voxels takes gigabytes
        binary = mask.max() <= 1 if mask.dtype.kind in "bu" else np.isin(mask, (0, 1)).all()
        if not binary:
            raise ValueError(f"{name} must be binary masks (0/1)")
    return y_true.reshape(-1).astype(bool), y_pred.reshape(-1).astype(bool)


def iou(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """|T ∩ P| / |T ∪ P| of all voxels of all masks pooled: Models Genesis' 3D segmentation score, taken
    over the whole test array (crops or volumes, any shape) after binarising the prediction at 0.5; 1.0
    when both are empty."""
    truth, pred = _binary_voxels(y_true, y_pred)
    union = np.count_nonzero(truth | pred)
    return 1.0 if union == 0 else float(np.count_nonzero(truth & pred) / union)


def voxel_dice(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """2|T ∩ P| / (|T| + |P|) of all voxels pooled, the Dice reported beside :func:`iou` (any shape)."""
    truth, pred = _binary_voxels(y_true, y_pred)
    total = np.count_nonzero(truth) + np.count_nonzero(pred)
    return 1.0 if total == 0 else float(2.0 * np.count_nonzero(truth & pred) / total)


def pack_volumes(ids: Sequence[str], truths: Sequence[np.ndarray],
                 preds: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Masks of volumes that differ in shape as plain arrays (``allow_pickle=False``): ``y_true`` / ``y_pred``
    uint8, every volume flattened and concatenated, volume i at ``offsets[i]:offsets[i + 1]`` with
    ``shapes[i]``."""
    if not len(ids) == len(truths) == len(preds):
        raise ValueError(f"{len(ids)} ids for {len(truths)} truths and {len(preds)} predictions")
    for case, truth, pred in zip(ids, truths, preds, strict=True):
        if truth.shape != pred.shape:
            raise ValueError(f"{case}: truth {truth.shape} and prediction {pred.shape} differ in shape")
    sizes = [t.size for t in truths]
    flat = {name: np.concatenate([m.reshape(-1) for m in masks]).astype(np.uint8) if masks else np.zeros(0, np.uint8)
            for name, masks in (("y_true", truths), ("y_pred", preds))}
    return {"ids": np.asarray(ids, dtype=str), "shapes": np.asarray([t.shape for t in truths], np.int64),
            "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), **flat}


def unpack_volumes(predictions: Mapping[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(id, truth, prediction) of each volume of :func:`pack_volumes`' arrays, in their shapes."""
    offsets, shapes = predictions["offsets"], predictions["shapes"]
    for i, case in enumerate(predictions["ids"]):
        part = slice(int(offsets[i]), int(offsets[i + 1]))
        shape = tuple(int(n) for n in shapes[i])
        yield str(case), predictions["y_true"][part].reshape(shape), predictions["y_pred"][part].reshape(shape)


# Each headline metric reads the arrays of a predictions.npz; a new task type registers here so that
# fine-tuning and the tables keep sharing one definition. 3D volumes of different shapes are saved flattened
# and concatenated (with their offsets), which the pooled IoU reads as one array.
HEADLINE_METRICS: dict[str, Callable[[Mapping[str, np.ndarray]], float]] = {
    "auc": lambda p: mean_auc(p["y_true"], p["y_score"]),
    "dice": lambda p: mean_dice(p["y_true"], p["y_pred"]),
    "iou": lambda p: iou(p["y_true"], p["y_pred"]),
}
METRIC_ARRAYS: dict[str, tuple[str, ...]] = {"auc": ("y_true", "y_score"), "dice": ("y_true", "y_pred"),
                                              "iou": ("y_true", "y_pred")}


def score_predictions(metric: str, predictions: Mapping[str, np.ndarray]) -> float:
    """The task's headline number from the arrays saved in ``predictions.npz``."""
    if metric not in HEADLINE_METRICS:
        raise KeyError(f"unknown metric '{metric}' (known: {', '.join(HEADLINE_METRICS)})")
    missing = [name for name in METRIC_ARRAYS[metric] if name not in predictions]
    if missing:
        raise KeyError(f"metric '{metric}' needs the arrays {', '.join(METRIC_ARRAYS[metric])}; the predictions "
                       f"lack {', '.join(missing)}")
    return HEADLINE_METRICS[metric](predictions)

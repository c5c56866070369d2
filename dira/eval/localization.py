"""Weakly-supervised localization scoring (ChestX-ray8 protocol, DiRA appendix A.1), as pure functions.

A class heatmap is min-max scaled to [0, 255], binarised at each threshold (60 and 180), and every
connected region of the binary map becomes one box. A ground-truth box counts as localised at IoU
threshold δ when some predicted box of its class on its image reaches IoU ≥ δ with it. Accuracy is
the fraction of ground-truth boxes localised, per class and averaged over the classes.

Protocol details the papers leave open, and what is done here:

- Binarisation keeps pixels strictly above the threshold (a constant map, all 0 after scaling, has no
  region at any threshold).
- Regions are 8-connected (``skimage.measure.label`` with full connectivity), one box per region.
- Table 5 prints one accuracy per δ for the two thresholds together: the boxes of both binarisations
  are candidates (``threshold == "any"``). The per-threshold accuracies are kept beside it.
- Boxes are ``(x, y, w, h)`` with ``w``/``h`` in pixels covered (a one-pixel region is 1×1), the
  convention of BBox_List_2017.csv, and IoU is the area ratio of those rectangles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from skimage.measure import label, regionprops

from dira.data.labels import CHESTXRAY14_BOX_LABELS, CHESTXRAY14_LABELS

Box = tuple[float, float, float, float]  # x, y, w, h

ANY_THRESHOLD = "any"
# An IoU equal to δ up to float rounding (e.g. 0.30000000000000004 vs 0.3) counts as reaching it.
IOU_TOLERANCE = 1e-9
# The eight boxed pathologies in the classifier's label order.
BOX_CLASSES: tuple[str, ...] = tuple(n for n in CHESTXRAY14_LABELS if n in CHESTXRAY14_BOX_LABELS.values())


def scale_to_255(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 255] (float); a constant map becomes all zeros rather than nan."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    low, high = float(heatmap.min()), float(heatmap.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("heatmap holds non-finite values")
    if high - low <= 0:
        return np.zeros_like(heatmap)
    return (heatmap - low) * (255.0 / (high - low))


def heatmap_to_boxes(heatmap: np.ndarray, threshold: float) -> list[tuple[int, int, int, int]]:
    """One ``(x, y, w, h)`` box per 8-connected region of ``heatmap > threshold``, in the array's pixels.

    ``heatmap`` is a 2D array already scaled to [0, 255]. Regions come in the order of their top-left
    scan position, so the result is deterministic.
    """
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2:
        raise ValueError(f"expected a 2D heatmap, got shape {heatmap.shape}")
    regions = label(heatmap > threshold, connectivity=2)
    boxes = []
    for region in regionprops(regions):
        top, left, bottom, right = region.bbox  # bottom/right exclusive
        boxes.append((int(left), int(top), int(right - left), int(bottom - top)))
    return boxes


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` rectangles (0 when they do not overlap)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    intersection = iw * ih
    union = aw * ah + bw * bh - intersection
    return intersection / union if union > 0 else 0.0


def scale_box(box: Sequence[float], sx: float, sy: float) -> Box:
    """A box from heatmap pixels to the original image's pixels (the cache resized W×H to S×S)."""
    x, y, w, h = box
    return (x * sx, y * sy, w * sx, h * sy)


def localization_accuracy(ground_truth: pd.DataFrame, predicted: pd.DataFrame, classes: Iterable[str],
                          thresholds: Sequence[int], deltas: Sequence[float]) -> pd.DataFrame:
    """Accuracy per class, threshold (each, and ``any``) and δ, with a ``mean`` row over the classes.

    ``ground_truth`` has one row per box with columns ``box_id`` and ``label``; ``predicted`` one row per
    predicted box with ``box_id`` (the ground-truth box it is scored against), ``threshold`` and ``iou``.
    The mean is over the classes that have at least one ground-truth box.
    """
    classes = list(classes)
    predicted = predicted.assign(threshold=predicted["threshold"].astype(str))
    rows = []
    for threshold in [*(str(t) for t in thresholds), ANY_THRESHOLD]:
        chosen = predicted if threshold == ANY_THRESHOLD else predicted[predicted["threshold"] == threshold]
        iou = chosen.groupby("box_id")["iou"].max()
        # a box without any predicted box has IoU 0: it is a miss at every δ
        gt_iou = ground_truth["box_id"].map(iou).fillna(0.0).to_numpy()
        for delta in deltas:
            hit = gt_iou >= delta - IOU_TOLERANCE
            per_class = []
            for name in classes:
                of_class = (ground_truth["label"] == name).to_numpy()
                n = int(of_class.sum())
                accuracy = float(hit[of_class].mean()) if n else float("nan")
                per_class.append(accuracy)
                rows.append({"label": name, "threshold": threshold, "delta": delta, "n_boxes": n,
                             "n_correct": int(hit[of_class].sum()), "accuracy": accuracy})
            finite = [a for a in per_class if np.isfinite(a)]
            rows.append({"label": "mean", "threshold": threshold, "delta": delta, "n_boxes": len(ground_truth),
                         "n_correct": int(hit.sum()), "accuracy": float(np.mean(finite)) if finite else float("nan")})
    return pd.DataFrame(rows, columns=["label", "threshold", "delta", "n_boxes", "n_correct", "accuracy"])


def accuracy_from_boxes(boxes: pd.DataFrame, thresholds: Sequence[str], deltas: Sequence[float]) -> pd.DataFrame:
    """``accuracy.csv`` recomputed from ``boxes.csv`` alone (the ground truth is every ``box_id`` it lists).

    Here rather than in ``localize`` so that the report can check a run's accuracy without importing torch.
    """
    truth = boxes.drop_duplicates("box_id")[["box_id", "label"]]
    return localization_accuracy(truth, boxes, BOX_CLASSES, thresholds, deltas)

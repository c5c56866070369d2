"""``dira localize``: Grad-CAM boxes of one fine-tuned ChestX-ray14 classifier, scored against BBox_List.

For every boxed test image and each of its boxed classes, Grad-CAM of that class on the classifier's last
convolutional block is computed on the whole cached image resized to the classifier's input size S
(``model.input_size``, whatever the cache's size), scaled to [0, 255], binarised at each threshold and
turned into boxes, which are mapped back to the original image's pixels (W×H was resized to S×S) and
compared with the ground-truth boxes there.

Written beside each other in the output folder:

- ``boxes.csv``: one row per predicted box and threshold, with the ground-truth box it is scored against
  and their IoU (a row with empty box cells where a heatmap gave no box), so every ground-truth box is
  listed and ``accuracy.csv`` can be recomputed from this file alone
  with :func:`dira.eval.localization.accuracy_from_boxes`;
- ``accuracy.csv``: accuracy per class, threshold (``any`` = both thresholds' boxes, Table 5) and δ;
- ``examples.npz``: for the first boxed test image of each class, the image, its heatmap and box at the
  classifier's resolution (the Fig. 6 panels; the same images for every initialisation);
- ``localization.json`` last, as the completion marker: the summary and provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dira.data.cache import SplitCache
from dira.data.classification import ClassificationDataset, network_input, whole_image
from dira.data.labels import CHESTXRAY14_LABELS
from dira.errors import InputError
from dira.eval.gradcam import grad_cam
from dira.eval.localization import (
    ANY_THRESHOLD,
    BOX_CLASSES,
    accuracy_from_boxes,
    box_iou,
    heatmap_to_boxes,
    scale_box,
    scale_to_255,
)
from dira.io import atomic_path, load_torch, write_json, write_text
from dira.models.classifier import build_classifier
from dira.provenance import provenance
from dira.runtime.device import configure_threads, resolve_device

BOX_COLUMNS = ["box_id", "image", "label", "gt_x", "gt_y", "gt_w", "gt_h", "threshold", "x", "y", "w", "h", "iou"]


def read_ground_truth(test_h5: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The test split's boxes (one row each, original pixels) and the images' (width, height)."""
    cache = SplitCache(test_h5)
    try:
        missing = [name for name in ("boxes", "box_index", "box_labels", "original_size", "labels")
                   if not cache.has(name)]
        if missing:
            raise InputError(f"{test_h5}: no {', '.join(missing)} (prepare ChestX-ray14 with its BBox_List)")
        boxes, rows, classes = cache.array("boxes"), cache.array("box_index"), cache.array("box_labels")
        ids, sizes, names = cache.ids, cache.array("original_size"), cache.label_names
    finally:
        cache.close()
    if tuple(names) != CHESTXRAY14_LABELS:
        raise InputError(f"{test_h5}: label_names {names} are not the ChestX-ray14 labels")
    if len(boxes) == 0:
        raise InputError(f"{test_h5}: the test split has no ground-truth boxes to localize")
    if rows.min() < 0 or rows.max() >= len(ids) or classes.min() < 0 or classes.max() >= len(names):
        raise InputError(f"{test_h5}: box_index or box_labels point outside the split's images or labels")
    truth = pd.DataFrame({
        "box_id": np.arange(len(boxes)), "row": rows, "image": [str(ids[r]) for r in rows],
        "class_index": classes, "label": [names[c] for c in classes],
        "gt_x": boxes[:, 0], "gt_y": boxes[:, 1], "gt_w": boxes[:, 2], "gt_h": boxes[:, 3],
    })
    unboxable = sorted(set(truth["label"]) - set(BOX_CLASSES))
    if unboxable:
        raise InputError(f"{test_h5}: boxes of classes {unboxable} outside the eight boxed pathologies")
    return truth, sizes


def load_classifier(model_pt: Path, backbone: str, num_classes: int) -> torch.nn.Module:
    state = load_torch(model_pt)
    if not isinstance(state, Mapping):
        raise InputError(f"{model_pt}: expected a classifier state dict, got {type(state).__name__}")
    model = build_classifier(backbone, num_classes, None)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise InputError(f"{model_pt}: not a {backbone} classifier with {num_classes} outputs "
                         f"({first[:200]}{'...' if len(first) > 200 else ''})") from err
    return model.eval()


def class_heatmaps(model: torch.nn.Module, layer_name: str, dataset: ClassificationDataset,
                   pairs: list[tuple[int, int]], batch_size: int, device: torch.device,
                   relu: bool) -> np.ndarray:
    """Grad-CAM maps scaled to [0, 255] (float32, P×S×S) for (image row, class) pairs."""
    layer = dict(model.named_modules()).get(layer_name)
    if layer is None:
        raise InputError(f"localization.layer: the classifier has no module '{layer_name}'")
    maps = []
    for start in tqdm(range(0, len(pairs), batch_size), desc="grad-cam", unit="batch", leave=False):
        chunk = pairs[start:start + batch_size]
        images = network_input(torch.stack([dataset[row][0] for row, _ in chunk]).to(device))
        classes = torch.tensor([c for _, c in chunk], device=device)
        cams = grad_cam(model, layer, images, classes, relu=relu).cpu().numpy()
        maps.extend(scale_to_255(cam).astype(np.float32) for cam in cams)
    return np.stack(maps)


def predicted_boxes(truth: pd.DataFrame, pairs: list[tuple[int, int]], heatmaps: np.ndarray,
                    sizes: np.ndarray, thresholds: list[float]) -> pd.DataFrame:
    """Every box of every threshold, in original pixels, scored against each ground-truth box of its pair."""
    index = {pair: i for i, pair in enumerate(pairs)}
    side = heatmaps.shape[-1]
    rows = []
    for gt in truth.itertuples():
        heatmap = heatmaps[index[(gt.row, gt.class_index)]]
        width, height = sizes[gt.row]
        target = (gt.gt_x, gt.gt_y, gt.gt_w, gt.gt_h)
        for threshold in thresholds:
            found = [scale_box(box, width / side, height / side) for box in heatmap_to_boxes(heatmap, threshold)]
            ground = {"box_id": gt.box_id, "image": gt.image, "label": gt.label, "gt_x": gt.gt_x, "gt_y": gt.gt_y,
                      "gt_w": gt.gt_w, "gt_h": gt.gt_h, "threshold": f"{threshold:g}"}
            # a ground-truth box whose heatmap has no region above the threshold keeps a row with empty cells,
            # so that boxes.csv alone lists every ground-truth box (and its miss)
            rows += [{**ground, "x": x, "y": y, "w": w, "h": h, "iou": box_iou((x, y, w, h), target)}
                     for x, y, w, h in found] or [{**ground, **dict.fromkeys(("x", "y", "w", "h", "iou"), np.nan)}]
    return pd.DataFrame(rows, columns=BOX_COLUMNS)


def example_panels(truth: pd.DataFrame, pairs: list[tuple[int, int]], heatmaps: np.ndarray,
                   dataset: ClassificationDataset, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """The first ground-truth box of each class: image, heatmap and box at the classifier's resolution."""
    index = {pair: i for i, pair in enumerate(pairs)}
    side = heatmaps.shape[-1]
    chosen = truth.groupby("label", sort=False).head(1)
    chosen = chosen.sort_values("label", key=lambda s: s.map(BOX_CLASSES.index))
    boxes = [scale_box((g.gt_x, g.gt_y, g.gt_w, g.gt_h), side / sizes[g.row][0], side / sizes[g.row][1])
             for g in chosen.itertuples()]
    return {
        "labels": chosen["label"].to_numpy(dtype=str),
        "ids": chosen["image"].to_numpy(dtype=str),
        "images": np.stack([dataset[g.row][0][0].numpy() for g in chosen.itertuples()]),
        "heatmaps": np.stack([heatmaps[index[(g.row, g.class_index)]] for g in chosen.itertuples()]).round()
                      .astype(np.uint8),
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
    }


def localize(model_pt: Path, data_dir: Path, out_dir: Path, init: str, seed: int, config: dict[str, Any]) -> None:
    """Score one fine-tuned classifier; see the module docstring for what is written."""
    settings = config["localization"]
    device = resolve_device(config["device"])
    configure_threads(config["threads"])
    test_h5 = Path(data_dir) / "test.h5"
    truth, sizes = read_ground_truth(test_h5)
    dataset = ClassificationDataset(test_h5, transform=whole_image(config["model"]["input_size"]))
    model = load_classifier(Path(model_pt), config["model"]["backbone"], len(CHESTXRAY14_LABELS)).to(device)

    pairs = sorted({(int(r), int(c)) for r, c in zip(truth["row"], truth["class_index"], strict=True)})
    heatmaps = class_heatmaps(model, settings["layer"], dataset, pairs, settings["batch_size"], device,
                              relu=settings["relu"])
    predicted = predicted_boxes(truth, pairs, heatmaps, sizes, settings["thresholds"])
    accuracy = accuracy_from_boxes(predicted, [f"{t:g}" for t in settings["thresholds"]], settings["deltas"])

    out_dir = Path(out_dir)
    write_text(out_dir / "boxes.csv", predicted.to_csv(index=False))
    write_text(out_dir / "accuracy.csv", accuracy.to_csv(index=False))
    with atomic_path(out_dir / "examples.npz", suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **example_panels(truth, pairs, heatmaps, dataset, sizes))
    table5 = accuracy[(accuracy["label"] == "mean") & (accuracy["threshold"] == ANY_THRESHOLD)]
    write_json(out_dir / "localization.json", {
        "init": init, "seed": int(seed), "model": str(model_pt), "test": str(test_h5),
        "n_boxes": len(truth), "n_images": int(truth["row"].nunique()),
        "n_predicted_boxes": int(predicted["iou"].notna().sum()),
        "heatmap_size": int(heatmaps.shape[-1]), "cache_size": dataset.cache_size,
        "mean_accuracy": {f"{d:g}": float(a) for d, a in zip(table5["delta"], table5["accuracy"], strict=True)},
        "device_used": str(device),
        "provenance": provenance({key: config[key] for key in ("device", "threads", "model", "localization")}),
    })
    summary = ", ".join(f"δ={d:g}: {100 * a:.1f}%" for d, a in zip(table5["delta"], table5["accuracy"], strict=True))
    tqdm.write(f"localization {init} seed{seed}: {len(truth)} boxes; {summary}")

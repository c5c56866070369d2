"""ChestX-ray14: the official train_val / test lists, validation = a seeded 10 % of train_val patients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.prepare.common import SPLITS, SplitPlan, sha256, split_patients, write_caches
from dira.data.sources.chestxray14 import TRAIN_VAL_LIST, ChestXray14Index, read_chestxray14
from dira.errors import InputError
from dira.provenance import provenance


def _chestxray14_plan(index: ChestXray14Index, split: str, ids: list[str]) -> SplitPlan:
    records = [index.records[i] for i in ids]
    plan = SplitPlan(
        split=split, ids=list(ids), paths=[r.path for r in records],
        patients=np.array([r.patient_id for r in records], np.int64),
        labels=np.stack([r.labels for r in records]).astype(np.uint8),
        label_names=CHESTXRAY14_LABELS,
    )
    boxes = [(row, box) for row, image_id in enumerate(ids) for box in index.boxes.get(image_id, [])]
    if split == "test" or boxes:  # the localisation benchmark reads test.h5's boxes, even if none
        plan.boxes = np.array([(b.x, b.y, b.w, b.h) for _, b in boxes], np.float32).reshape(-1, 4)
        plan.box_index = np.array([row for row, _ in boxes], np.int64)
        plan.box_labels = np.array([CHESTXRAY14_LABELS.index(b.label) for _, b in boxes], np.int64)
    return plan


def _chestxray14_manifest(index: ChestXray14Index, plans: list[SplitPlan]) -> dict[str, Any]:
    return {
        "root": str(index.root.resolve()),
        "files": {name: {"sha256": sha256(path), "bytes": path.stat().st_size}
                  for name, path in index.source_files().items()},
        "images": {p.split: len(p.ids) for p in plans},
        "patients": {p.split: len(np.unique(p.patients)) for p in plans},
        "boxes": {p.split: 0 if p.boxes is None else len(p.boxes) for p in plans},
        "synthetic": index.synthetic,
    }


def prepare(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    settings, chestxray14 = config["prepare"], config["datasets"]["chestxray14"]
    index = read_chestxray14(root)
    train_val_patients = [index.records[i].patient_id for i in index.train_val]
    if len(set(train_val_patients)) < 2:
        raise InputError(f"{root / TRAIN_VAL_LIST}: images of {len(set(train_val_patients))} patient(s); "
                         "need at least 2 to hold out validation patients")
    val_patients = split_patients(train_val_patients, settings["val_fraction"], settings["split_seed"])
    split_ids = {
        "train": [i for i in index.train_val if index.records[i].patient_id not in val_patients],
        "val": [i for i in index.train_val if index.records[i].patient_id in val_patients],
        "test": index.test,
    }
    plans = [_chestxray14_plan(index, split, split_ids[split]) for split in SPLITS]
    attrs = {
        "dataset": "chestxray14", "cache_size": chestxray14["cache_size"], "source": index.source,
        "manifest": _chestxray14_manifest(index, plans),
        "provenance": provenance({"prepare": settings,
                                  "datasets": {"chestxray14": chestxray14}}),
    }
    write_caches(plans, Path(out_dir), chestxray14["cache_size"], settings["workers"], attrs,
                 desc="prepare chestxray14")
    counts = ", ".join(f"{p.split} {len(p.ids)} images / {len(np.unique(p.patients))} patients"
                       for p in plans)
    n_boxes = sum(len(boxes) for boxes in index.boxes.values())
    print(f"chestxray14 ({index.source}): {counts}, {n_boxes} boxes -> {out_dir}")

"""CheXpert: train/val from train.csv (a seeded 10 % of its patients held out), test = valid.csv or test_labels.csv.

The paper's protocol, like BenchmarkTransferLearning's, tests on the 234-image validation set (evaluation
'valid'); CheXlocalize's 668-image test set is the alternative (evaluation 'test'). ``root`` is the folder that
holds train.csv (``CheXpert-v1.0-small/``). ``labels`` keeps the label cells as int8 codes, not targets, because
the uncertainty policy belongs to fine-tuning (``dira.data.sources.chexpert.apply_uncertainty``):

    1 = positive, 0 = negative, -1 = uncertain, -2 = blank (not mentioned)

The codes are also stored as the attribute ``label_codes`` of the file and of ``labels``. With
``prepare.on_bad_sample: skip`` a listed image that is missing or unreadable is left out and listed in
``bad_samples.csv`` beside the caches (file, id, reason; the reason names the CSV and line); with 'error' the
first one stops prepare before any cache is replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.prepare.common import (
    BAD_SAMPLES_CSV,
    BadSamples,
    SplitPlan,
    sha256,
    split_patients,
    write_caches,
)
from dira.data.sources.chexpert import (
    CHEXPERT_LABELS,
    LABEL_CODES,
    TRAIN_CSV,
    CheXpertImage,
    CheXpertIndex,
    read_chexpert,
)
from dira.errors import InputError
from dira.provenance import provenance


def _plan(split: str, images: list[CheXpertImage]) -> SplitPlan:
    return SplitPlan(
        split=split, ids=[i.id for i in images], paths=[i.path for i in images],
        patients=np.array([i.patient for i in images], np.int64),
        labels=np.stack([i.codes for i in images]).astype(np.int8), label_names=CHEXPERT_LABELS,
        label_attrs={"label_codes": json.dumps(LABEL_CODES)},
    )


def label_states(codes: np.ndarray) -> dict[str, dict[str, int]]:
    """Per label, how many cells are positive, negative, uncertain and blank."""
    return {name: {state: int((codes[:, col] == code).sum()) for state, code in LABEL_CODES.items()}
            for col, name in enumerate(CHEXPERT_LABELS)}


def _manifest(index: CheXpertIndex, plans: list[SplitPlan], dataset_config: dict[str, Any],
              missing: int) -> dict[str, Any]:
    return {
        "root": str(index.root.resolve()),
        "files": {name: {"sha256": sha256(path), "bytes": path.stat().st_size}
                  for name, path in index.source_files().items()},
        "evaluation": dataset_config["evaluation"], "frontal_only": dataset_config["frontal_only"],
        "images": {p.split: len(p.ids) for p in plans},  # as planned; unreadable ones may yet be skipped
        "missing_images_left_out": missing,
        "patients": {p.split: len(np.unique(p.patients)) for p in plans},
        "uncertain_cells": {p.split: int((p.labels == LABEL_CODES["uncertain"]).sum()) for p in plans},
        "label_states": {p.split: label_states(p.labels) for p in plans},
        "synthetic": index.synthetic,
    }


def prepare(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    settings, chexpert = config["prepare"], config["datasets"]["chexpert"]
    root, out_dir = Path(root), Path(out_dir)
    bad_samples = BadSamples(settings["on_bad_sample"])
    index = read_chexpert(root, chexpert["evaluation"], chexpert["frontal_only"], bad_samples)
    train_patients = [i.patient for i in index.train]
    if len(set(train_patients)) < 2:
        raise InputError(f"{root / TRAIN_CSV}: images of {len(set(train_patients))} patient(s) left; "
                         "need at least 2 to hold out validation patients")
    if not index.test:
        raise InputError(f"{root / index.test_csv}: no images left to test on")
    val_patients = split_patients(train_patients, settings["val_fraction"], settings["split_seed"])
    plans = [
        _plan("train", [i for i in index.train if i.patient not in val_patients]),
        _plan("val", [i for i in index.train if i.patient in val_patients]),
        _plan("test", index.test),
    ]
    attrs = {
        "dataset": "chexpert", "cache_size": chexpert["cache_size"], "source": index.source,
        "label_codes": LABEL_CODES, "manifest": _manifest(index, plans, chexpert, len(bad_samples)),
        "provenance": provenance({"prepare": settings, "datasets": {"chexpert": chexpert}}),
    }
    written = write_caches(plans, out_dir, chexpert["cache_size"], settings["workers"], attrs,
                           desc="prepare chexpert", bad_samples=bad_samples)
    bad_samples.write(out_dir)  # always, header only when nothing was skipped: a rule can declare it
    counts = ", ".join(f"{p.split} {len(p.ids)} images / {len(np.unique(p.patients))} patients" for p in written)
    skipped = f", {len(bad_samples)} skipped (see {out_dir / BAD_SAMPLES_CSV})" if len(bad_samples) else ""
    print(f"chexpert ({index.source}, test = {index.test_csv}): {counts}{skipped} -> {out_dir}")

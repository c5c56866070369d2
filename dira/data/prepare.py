"""Raw dataset -> HDF5 caches ``{train,val,test}.h5``: the one place where images are decoded and resized.

Each dataset contributes a preparer that reads and checks its raw layout and turns it into per-split
plans (ids, image paths, labels, patients, boxes); decoding, resizing and writing are shared. The whole
index is validated before any pixel is decoded, and the three caches are written under temporary names
and renamed together at the end, so a bad input never leaves a mix of old and new caches behind.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from dira.config import validate
from dira.data.cache import CacheWriter
from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.sources.chestxray14 import TRAIN_VAL_LIST, ChestXray14Index, read_chestxray14
from dira.errors import InputError
from dira.provenance import provenance

SPLITS = ("train", "val", "test")


@dataclass
class SplitPlan:
    """What one split cache will hold, known before any image is decoded."""

    split: str
    ids: list[str]
    paths: list[Path]
    patients: np.ndarray  # int64 (N,)
    labels: np.ndarray  # uint8 (N, C)
    label_names: tuple[str, ...]
    boxes: np.ndarray | None = None  # float32 (M, 4) x, y, w, h in source pixels; None: no box datasets
    box_index: np.ndarray | None = None  # int64 (M,) row of each box
    box_labels: np.ndarray | None = None  # int64 (M,) label column of each box


def load_image(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Grey uint8 size×size image and the source's (width, height).

    ``convert("L")`` also flattens the release's few RGBA PNGs. PIL's bilinear filter widens its support
    when shrinking, so it antialiases, like torchvision's ``Resize`` on PIL images in the reference code.
    """
    try:
        with Image.open(path) as image:
            original = image.size
            grey = image.convert("L")
    except Exception as err:  # PIL reports corrupt files as OSError, SyntaxError, ValueError, zlib.error...
        raise InputError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None
    return np.asarray(grey.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8), original


def split_patients(patients: Iterable[int], val_fraction: float, seed: int) -> set[int]:
    """A seeded random ``val_fraction`` of the distinct patients (at least one, never all of them)."""
    unique = np.unique(np.fromiter(patients, np.int64))
    n_val = min(unique.size - 1, max(1, round(val_fraction * unique.size)))
    return set(np.random.default_rng(seed).choice(unique, n_val, replace=False).tolist())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decoded(paths: list[Path], size: int, workers: int) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """Decode in order, in ``workers`` processes; an InputError raised in a worker reaches the caller."""
    decode = partial(load_image, size=size)
    if workers <= 1:
        yield from map(decode, paths)
        return
    # spawn, not fork: the parent holds threads (tqdm's monitor, maybe torch's) that fork copies half-alive.
    # An executor, not a Pool: a worker that cannot start raises BrokenProcessPool instead of hanging.
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from executor.map(decode, paths, chunksize=max(1, min(64, len(paths) // (8 * workers))))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)  # on an error, skip the images still queued


def write_caches(plans: list[SplitPlan], out_dir: Path, image_size: int, workers: int,
                 attrs: dict[str, Any], desc: str) -> None:
    """Decode every planned image once and write all split caches; all appear together or none."""
    jobs = [(plan, row) for plan in plans for row in range(len(plan.ids))]
    images = _decoded([plan.paths[row] for plan, row in jobs], image_size, workers)
    with ExitStack() as stack:
        stack.enter_context(closing(images))  # stops the worker pool on the way out, also on errors
        writers = {plan.split: stack.enter_context(CacheWriter(out_dir / f"{plan.split}.h5", len(plan.ids),
                                                               image_size, {**attrs, "split": plan.split}))
                   for plan in plans}
        for (plan, row), (pixels, original) in zip(jobs, tqdm(images, total=len(jobs), desc=desc, unit="img"),
                                                   strict=True):
            writers[plan.split].write_image(row, pixels, original)
        for plan in plans:
            writer = writers[plan.split]
            writer.write_array("ids", plan.ids)
            writer.write_array("labels", plan.labels.astype(np.uint8), label_names=list(plan.label_names))
            writer.write_array("patients", plan.patients.astype(np.int64))
            if plan.boxes is not None:
                writer.write_array("boxes", plan.boxes.astype(np.float32).reshape(-1, 4))
                writer.write_array("box_index", plan.box_index.astype(np.int64))
                writer.write_array("box_labels", plan.box_labels.astype(np.int64))


# ---- ChestX-ray14 -------------------------------------------------------------------------------------

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


def prepare_chestxray14(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    settings = config["prepare"]
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
        "dataset": "chestxray14", "image_size": settings["image_size"], "source": index.source,
        "manifest": _chestxray14_manifest(index, plans),
        "provenance": provenance({"prepare": settings,
                                  "datasets": {"chestxray14": config["datasets"]["chestxray14"]}}),
    }
    write_caches(plans, Path(out_dir), settings["image_size"], settings["workers"], attrs,
                 desc="prepare chestxray14")
    counts = ", ".join(f"{p.split} {len(p.ids)} images / {len(np.unique(p.patients))} patients"
                       for p in plans)
    n_boxes = sum(len(boxes) for boxes in index.boxes.values())
    print(f"chestxray14 ({index.source}): {counts}, {n_boxes} boxes -> {out_dir}")


Preparer = Callable[[Path, Path, dict[str, Any]], None]
PREPARERS: dict[str, Preparer] = {"chestxray14": prepare_chestxray14}


def prepare_dataset(name: str, root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    """Read the raw dataset ``name`` under ``root`` and write its split caches into ``out_dir``."""
    if name not in PREPARERS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(PREPARERS)}")
    PREPARERS[name](Path(root), Path(out_dir), validate(config))

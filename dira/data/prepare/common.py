"""What every dataset's preparer shares: split plans, image decoding and resizing, writing the caches.

The whole index is validated before any pixel is decoded, and the three caches are written under
temporary names and renamed together at the end, so a bad input never leaves a mix of old and new
caches behind.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from dira.data.cache import CacheWriter
from dira.errors import InputError

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

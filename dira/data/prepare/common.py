"""What every dataset's preparer shares: split plans, sample decoding, the bad-sample policy, writing the caches.

The whole index is validated before any pixel is decoded, and the three caches are written under
temporary names and renamed together at the end, so a bad input never leaves a mix of old and new
caches behind. Decoding runs in worker processes: a plan lists picklable samples (a path, or a small
record of paths and strings) that each turn themselves into an image and, for segmentation, a mask.
Sources that yield many rows each (a CT scan's crops) go through ``rows.write_row_caches`` instead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from dira.data.cache import CacheWriter
from dira.errors import InputError
from dira.io import write_json, write_text

SPLITS = ("train", "val", "test")
BAD_SAMPLES_CSV = "bad_samples.csv"
SPLITS_JSON = "splits.json"
T = TypeVar("T")  # a sample, as decode_in_order hands it to a worker
R = TypeVar("R")  # what decoding it returns


@dataclass(frozen=True)
class Decoded:
    """One sample as the cache stores it."""

    image: np.ndarray  # uint8 (size, size)
    original_size: tuple[int, int]  # (width, height) of the source image
    mask: np.ndarray | None = None  # uint8 (size, size) 0/1, segmentation sets only


class Sample(Protocol):
    """One cache row's raw input. It is decoded in a worker process, so it must pickle cheaply."""

    @property
    def file(self) -> Path:
        """The file that bad_samples.csv names when decoding fails."""

    def load(self, size: int) -> Decoded:
        """Decode and resize; raise InputError naming the file (and row) when the sample is unusable."""


@dataclass(frozen=True)
class PictureFile:
    """A plain picture file, decoded by ``load_image``: what ``SplitPlan.paths`` stands for."""

    file: Path

    def load(self, size: int) -> Decoded:
        return Decoded(*load_image(self.file, size))


@dataclass
class SplitPlan:
    """What one split cache will hold, known before any image is decoded.

    Give ``paths`` for plain pictures (classification sets) or ``samples`` for anything that decodes
    otherwise (DICOM, 16-bit PNG, images with masks); ``has_masks`` adds the ``masks`` array.
    """

    split: str
    ids: list[str]
    paths: list[Path] | None = None
    patients: np.ndarray | None = None  # int64 (N,)
    labels: np.ndarray | None = None  # integer (N, C), stored with its dtype: uint8 for 0/1 sets
    label_names: tuple[str, ...] = ()
    label_attrs: dict[str, Any] = field(default_factory=dict)  # further attributes of `labels` (e.g. codes)
    boxes: np.ndarray | None = None  # float32 (M, 4) x, y, w, h in source pixels; None: no box datasets
    box_index: np.ndarray | None = None  # int64 (M,) row of each box
    box_labels: np.ndarray | None = None  # int64 (M,) label column of each box
    samples: list[Sample] | None = None
    has_masks: bool = False

    def __post_init__(self) -> None:
        if (self.paths is None) == (self.samples is None):
            raise ValueError(f"split plan {self.split!r}: give either paths or samples")
        if self.samples is None:
            self.samples = [PictureFile(Path(p)) for p in self.paths]
        if len(self.samples) != len(self.ids):
            raise ValueError(f"split plan {self.split!r}: {len(self.samples)} samples for {len(self.ids)} ids")

    def without(self, rows: set[int]) -> SplitPlan:
        """The same plan less the given rows; boxes of the remaining rows are renumbered."""
        keep = np.array([row not in rows for row in range(len(self.ids))], bool)
        pick = np.flatnonzero(keep)
        plan = SplitPlan(
            split=self.split, ids=[self.ids[r] for r in pick], samples=[self.samples[r] for r in pick],
            patients=None if self.patients is None else self.patients[pick],
            labels=None if self.labels is None else self.labels[pick],
            label_names=self.label_names, has_masks=self.has_masks,
        )
        if self.boxes is not None:
            kept_boxes = keep[self.box_index]
            plan.boxes, plan.box_labels = self.boxes[kept_boxes], self.box_labels[kept_boxes]
            plan.box_index = (np.cumsum(keep) - 1)[self.box_index[kept_boxes]]
        return plan


# ---- decoding --------------------------------------------------------------------------------------------

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


def resize_nearest(array: np.ndarray, size: int) -> np.ndarray:
    """size×size by nearest neighbour, as the segmentation benchmark resizes images and masks alike.

    Every output pixel copies the source pixel under its centre, so an image and its mask resized
    this way stay aligned pixel for pixel, and a 0/1 mask stays 0/1.
    """
    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.NEAREST))


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit grey levels: uint8 as it is; deeper integers stretched linearly from their own min..max.

    A 12-bit radiograph in a 16-bit container (Montgomery's PNGs) says nowhere how many bits it uses:
    dividing by 65535 would leave it nearly black, shifting by 8 would waste half its levels. The
    image's own range is known, keeps every grey-level relation (linear, monotone), and fills 0..255
    like the 8-bit sets (ChestX-ray14, SIIM) do.
    """
    if pixels.dtype == np.uint8:
        return pixels
    low, high = float(pixels.min()), float(pixels.max())
    if high == low:
        return np.zeros(pixels.shape, np.uint8)
    return ((pixels.astype(np.float32) - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)


# ---- splits ----------------------------------------------------------------------------------------------

def split_patients(patients: Iterable[int], val_fraction: float, seed: int) -> set[int]:
    """A seeded random ``val_fraction`` of the distinct patients (at least one, never all of them)."""
    unique = np.unique(np.fromiter(patients, np.int64))
    n_val = min(unique.size - 1, max(1, round(val_fraction * unique.size)))
    return set(np.random.default_rng(seed).choice(unique, n_val, replace=False).tolist())


def split_images(ids: Iterable[str], test_fraction: float, val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Seeded random split for sets with no official one: test = ``test_fraction`` of the images,
    val = ``val_fraction`` of the rest, each split at least one image and sorted.

    The permutation is of the sorted ids, so the order in which a reader lists them does not matter.
    """
    ordered = sorted(set(ids))
    n = len(ordered)
    if n < len(SPLITS):
        raise ValueError(f"cannot split {n} image(s) into train, val and test")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 2, max(1, round(test_fraction * n)))
    n_val = min(n - n_test - 1, max(1, round(val_fraction * (n - n_test))))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {split: sorted(ordered[i] for i in parts[split]) for split in SPLITS}


def write_splits(out_dir: Path, plans: list[SplitPlan], **settings: Any) -> None:
    """``splits.json``: the settings that made the split, then the ids of each split as cached."""
    write_json(Path(out_dir) / SPLITS_JSON, {**settings, **{plan.split: plan.ids for plan in plans}})


# ---- bad samples -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BadSample:
    file: Path  # the file at fault (a list's CSV for a row, the image or mask for its pixels)
    id: str  # the sample's id in the source (image id, file stem or path column)
    reason: str  # the error message, which names the file and row


class BadSamples:
    """The ``prepare.on_bad_sample`` policy for samples that cannot be used.

    A reader calls ``report(sample_id, file, error)`` for each such sample and carries on with the
    next one; ``write_caches`` does the same for samples that fail to decode. Under 'error' the first
    report raises its InputError, before any cache is opened or while they are still temporary files.
    Under 'skip' the sample is recorded and left out, and after the caches are written ``write(out_dir)``
    lists it in bad_samples.csv (columns file, id, reason; header only when nothing was left out).
    """

    def __init__(self, policy: str = "error"):
        if policy not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {policy!r}")
        self.policy = policy
        self.samples: list[BadSample] = []

    @property
    def skip(self) -> bool:
        return self.policy == "skip"

    def report(self, sample_id: str, file: Path, error: InputError) -> None:
        if not self.skip:
            raise error
        self.samples.append(BadSample(Path(file), sample_id, str(error)))

    def __len__(self) -> int:
        return len(self.samples)

    def write(self, out_dir: Path) -> Path:
        """Write bad_samples.csv atomically (replacing any earlier list) and return its path."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["file", "id", "reason"])
        writer.writerows([str(bad.file), bad.id, bad.reason] for bad in self.samples)
        path = Path(out_dir) / BAD_SAMPLES_CSV
        write_text(path, text.getvalue())
        return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- writing ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failed:
    """What a worker returns for a sample that could not be decoded under the 'skip' policy."""

    error: InputError


def write_split_dataset(name: str, plans: list[SplitPlan], out_dir: Path, settings: dict[str, Any],
                        cache_size: int, test_fraction: float, attrs: dict[str, Any], bad: BadSamples, source: str,
                        positives: str) -> None:
    """The end of a seeded-split preparation (SIIM-ACR, Montgomery): caches of ``cache_size``² images, ``splits.json``
    recording the ids as cached (bad samples left out), ``bad_samples.csv`` and a one-line summary counting
    ``positives`` per split."""
    out_dir = Path(out_dir)
    plans = write_caches(plans, out_dir, cache_size, settings["workers"], attrs, desc=f"prepare {name}",
                         bad_samples=bad)
    write_splits(out_dir, plans, dataset=name, seed=settings["split_seed"], test_fraction=test_fraction,
                 val_fraction=settings["val_fraction"])
    bad.write(out_dir)
    counts = ", ".join(f"{p.split} {len(p.ids)} images / {int(p.labels.sum())} {positives}" for p in plans)
    skipped = f", {len(bad)} bad samples left out ({BAD_SAMPLES_CSV})" if len(bad) else ""
    print(f"{name} ({source}): {counts}{skipped} -> {out_dir}")


def _load(sample: Sample, size: int, skip: bool) -> Decoded | Failed:
    try:
        return sample.load(size)
    except InputError as err:
        if not skip:
            raise
        return Failed(err)


def decode_in_order(decode: Callable[[T], R], samples: list[T], workers: int) -> Iterator[R]:
    """``decode`` each sample, results in order, in ``workers`` processes; an InputError raised in a worker
    reaches the caller. ``decode`` and the samples must pickle (a module-level function, or a partial of one)."""
    if workers <= 1:
        yield from map(decode, samples)
        return
    # spawn, not fork: the parent holds threads (tqdm's monitor, maybe torch's) that fork copies half-alive.
    # An executor, not a Pool: a worker that cannot start raises BrokenProcessPool instead of hanging.
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from executor.map(decode, samples, chunksize=max(1, min(64, len(samples) // (8 * workers))))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)  # on an error, skip the images still queued


class _PassAbandoned(Exception):
    """Samples failed under 'skip': the temporary caches are dropped and written again without them."""


def write_caches(plans: list[SplitPlan], out_dir: Path, cache_size: int, workers: int,
                 attrs: dict[str, Any], desc: str, *, bad_samples: BadSamples | None = None) -> list[SplitPlan]:
    """Decode every planned sample once and write all split caches; all appear together or none.

    Returns the plans as written. A sample that fails to decode stops everything under the 'error'
    policy (the default); under 'skip' it is reported to ``bad_samples`` and left out. A cache's length
    is fixed when it is opened, so that pass is abandoned and the caches are written again without
    the failed samples: a second decoding pass, paid only when a sample failed to decode.
    """
    bad_samples = bad_samples if bad_samples is not None else BadSamples("error")
    while True:
        failed = _write_pass(plans, Path(out_dir), cache_size, workers, attrs, desc, bad_samples)
        if not failed:
            return plans
        plans = [plan.without(failed.get(plan.split, set())) for plan in plans]
        desc = f"{desc} (again, without {sum(map(len, failed.values()))} bad)"


def _write_pass(plans: list[SplitPlan], out_dir: Path, cache_size: int, workers: int, attrs: dict[str, Any],
                desc: str, bad_samples: BadSamples) -> dict[str, set[int]]:
    """One decoding pass; returns the rows that failed under 'skip' (then nothing is written)."""
    jobs = [(plan, row) for plan in plans for row in range(len(plan.ids))]
    results = decode_in_order(partial(_load, size=cache_size, skip=bad_samples.skip),
                              [plan.samples[row] for plan, row in jobs], workers)
    failed: dict[str, set[int]] = {}
    try:
        with ExitStack() as stack:
            stack.enter_context(closing(results))  # stops the worker pool on the way out, also on errors
            writers = {plan.split: stack.enter_context(CacheWriter(out_dir / f"{plan.split}.h5", len(plan.ids),
                                                                   cache_size, {**attrs, "split": plan.split}))
                       for plan in plans}
            # Masks are few bytes per pixel but CacheWriter takes whole arrays: N·size² bytes per split.
            masks = {plan.split: np.zeros((len(plan.ids), cache_size, cache_size), np.uint8)
                     for plan in plans if plan.has_masks}
            for (plan, row), result in zip(jobs, tqdm(results, total=len(jobs), desc=desc, unit="img"),
                                           strict=True):
                if isinstance(result, Failed):
                    bad_samples.report(plan.ids[row], plan.samples[row].file, result.error)
                    failed.setdefault(plan.split, set()).add(row)
                    continue
                writers[plan.split].write_image(row, result.image, result.original_size)
                if plan.has_masks:
                    masks[plan.split][row] = _checked_mask(result, cache_size, plan.ids[row])
            if failed:
                raise _PassAbandoned
            for plan in plans:
                _write_arrays(writers[plan.split], plan, masks.get(plan.split))
    except _PassAbandoned:
        pass
    return failed


def _checked_mask(result: Decoded, size: int, sample_id: str) -> np.ndarray:
    mask = result.mask
    if mask is None or mask.shape != (size, size) or mask.dtype != np.uint8 or mask.max(initial=0) > 1:
        found = "none" if mask is None else f"{mask.dtype} {mask.shape}"
        raise ValueError(f"sample {sample_id}: expected a uint8 0/1 {size}x{size} mask, got {found}")
    return mask


def _write_arrays(writer: CacheWriter, plan: SplitPlan, masks: np.ndarray | None) -> None:
    writer.write_array("ids", plan.ids)
    if plan.labels is not None:
        writer.write_array("labels", plan.labels, label_names=list(plan.label_names), **plan.label_attrs)
    if plan.patients is not None:
        writer.write_array("patients", plan.patients.astype(np.int64))
    if masks is not None:
        writer.write_array("masks", masks)
    if plan.boxes is not None:
        writer.write_array("boxes", plan.boxes.astype(np.float32).reshape(-1, 4))
        writer.write_array("box_index", plan.box_index.astype(np.int64))
        writer.write_array("box_labels", plan.box_labels.astype(np.int64))

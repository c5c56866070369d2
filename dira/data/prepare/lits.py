"""LiTS 2017 -> liver-segmentation patches (train / val) and whole test volumes, Models Genesis' LCS split.

Cases are split by their volume number N (``datasets.lits.splits``, inclusive ranges; Models Genesis:
train 0-99, val 100-114, test 115-129, volume 130 unused). Every case is read with its segmentation,
both reoriented to LPS+ (:mod:`dira.data.volumes.nifti`), optionally resampled to ``spacing`` (trilinear
for CT, nearest neighbour for labels, on the same grid), HU windowed to [0, 1]. The mask is the whole
liver, labels 1 ∪ 2.

``train.h5`` / ``val.h5`` (rows of ``crop_shape`` (z, y, x), ``dira.data.prepare.rows`` layout): per case
``patches.per_case`` patches, a ``patches.target_fraction`` share of them (default one half) centred on a
random liver voxel and the rest on a random body voxel (HU > ``patches.body_hu``), in a seeded order
drawn from (seed, N). A patch is shifted inwards until it lies within the volume; only along an axis where
the volume is smaller than the patch is it padded (window's lower value, mask 0, ``padded`` = 1). Per-row
fields: ``masks`` uint8 (z, y, x) 0/1, ``on_target`` uint8 (1 = drawn on the liver), ``padded``,
``centres_zyx`` (patch centre, continuous index in the volume as cropped), ``centres_world`` (mm, LPS
x y z) and ``spacing_zyx``.

``test_volumes.h5`` holds the test cases whole, since their shapes differ (one group per case):

- ``ids``                  UTF-8 (M,): the case ids (``volume-N``), in order.
- ``cases/<id>/image``     float16 or uint8 (z, y, x): the windowed volume (stored as the patches are).
- ``cases/<id>/mask``      uint8 (z, y, x): the liver (0/1).
- ``cases/<id>/labels``    uint8 (z, y, x): the label map as released (0, 1, 2), on the same grid.
- group attributes: ``spacing_zyx`` (mm), ``origin`` (LPS mm of voxel 0), ``direction`` (3x3, rows),
  ``source_file``.
- file attributes as the patch caches (``dataset``, ``split``, ``source``, ``manifest``, ``provenance``,
  ``axes``, ``intensity``, ``dira_version``, ``kind``).

Case numbers of each split go to ``splits.json``; unreadable cases, under ``prepare.on_bad_sample: skip``,
to ``bad_samples.csv`` (and are left out).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import dira
from dira.data.cache import VoxelGrid
from dira.data.prepare.common import BadSamples, Failed, decode_in_order
from dira.data.prepare.luna16 import CropSettings, crop
from dira.data.prepare.rows import Row, RowLayout, RowPlan, write_row_caches
from dira.data.sources.lits import LitsCase, liver_mask, read_case, read_lits
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.data.volumes.resample import output_size, resample, resampled_geometry, source_coordinates
from dira.errors import InputError
from dira.io import atomic_path, write_json
from dira.provenance import provenance

SPLITS = ("train", "val", "test")
SPLITS_JSON = "splits.json"
TEST_VOLUMES = "test_volumes.h5"


# ---- shared with BraTS: patch sampling, nearest-neighbour labels, whole-volume caches ---------------------

def resample_labels(labels: np.ndarray, geometry: Geometry, spacing: tuple[float, float, float]) -> np.ndarray:
    """Nearest-neighbour labels on the grid :func:`resample` gives (each output voxel copies the nearest input)."""
    target = resampled_geometry(geometry, spacing)
    picks = [np.minimum(np.rint(source_coordinates(output_size(n, old, new), old, new)).astype(np.int64), n - 1)
             for n, old, new in zip(geometry.size, geometry.spacing, target.spacing, strict=True)]
    return labels[np.ix_(picks[2], picks[1], picks[0])]


def patch_start(centre: np.ndarray, volume_shape: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Start (z, y, x) of a patch centred on ``centre``, shifted inwards to lie within the volume where it fits,
    centred on the volume along an axis where it does not (it is padded there)."""
    centre, size, extent = np.asarray(centre), np.asarray(volume_shape), np.asarray(shape)
    start = centre - extent // 2
    return np.where(size >= extent, np.clip(start, 0, np.maximum(size - extent, 0)), (size - extent) // 2)


def draw_centres(rng: np.random.Generator, target: np.ndarray, anywhere: np.ndarray, count: int,
                 fraction: float) -> list[tuple[np.ndarray, bool]]:
    """``count`` voxels (z, y, x), ``round(fraction x count)`` of them in ``target`` (none when it is empty),
    the others in ``anywhere`` (the whole volume when that is empty), in a seeded random order."""
    on_target = round(count * fraction) if target.any() else 0
    kinds = rng.permutation(np.r_[np.ones(on_target, bool), np.zeros(count - on_target, bool)])
    anywhere = anywhere if anywhere.any() else np.ones_like(anywhere)
    drawn = {True: iter(_voxels_in(rng, target, on_target)), False: iter(_voxels_in(rng, anywhere, count - on_target))}
    return [(np.array(np.unravel_index(int(next(drawn[bool(kind)])), target.shape)), bool(kind)) for kind in kinds]


def _voxels_in(rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` flat indices of voxels of ``mask``, uniformly at random. A mask covering a fair share of the
    volume (a 512² x 900 CT's body) is sampled by rejection: listing its voxels would take gigabytes."""
    if count == 0:
        return np.zeros(0, np.int64)
    flat = mask.reshape(-1)
    if np.count_nonzero(flat) < 0.05 * flat.size:
        return rng.choice(np.flatnonzero(flat), count)
    picked: list[int] = []
    while len(picked) < count:
        candidates = rng.integers(0, flat.size, 32 * count)
        picked += candidates[flat[candidates]].tolist()
    return np.asarray(picked[:count], np.int64)


def patch_rows(case_id: str, image: np.ndarray, mask: np.ndarray, geometry: Geometry, centres: list,
               shape: tuple[int, int, int], fill: float, store: Callable[[np.ndarray], np.ndarray]) -> Iterator[Row]:
    """The rows of one case: ``image`` (z, y, x) or (C, z, y, x) cropped around each centre with its mask."""
    channels = image if image.ndim == 4 else image[None]
    for number, (centre, on_target) in enumerate(centres):
        start = patch_start(centre, mask.shape, shape)
        crops = [crop(channel, start, shape, fill) for channel in channels]
        patch = np.stack([c for c, _ in crops]) if image.ndim == 4 else crops[0][0]
        patch_mask, padded = crop(mask, start, shape, 0)
        middle = start + (np.asarray(shape) - 1) / 2
        yield Row(store(patch), f"{case_id}/{number}", {
            "masks": patch_mask.astype(np.uint8), "on_target": np.uint8(on_target), "padded": np.uint8(padded),
            "centres_zyx": middle.astype(np.float32), "centres_world": index_to_world(geometry, middle[::-1]),
            "spacing_zyx": np.asarray(geometry.spacing[::-1], np.float32)})


def patch_layout(row_shape: tuple[int, ...], shape: tuple[int, int, int], dtype: str, grid: VoxelGrid) -> RowLayout:
    fields = {"masks": (np.uint8, shape), "on_target": (np.uint8, ()), "padded": (np.uint8, ()),
              "centres_zyx": (np.float32, (3,)), "centres_world": (np.float64, (3,)),
              "spacing_zyx": (np.float32, (3,))}
    return RowLayout(row_shape, np.dtype(dtype), fields, grid)


@dataclass(frozen=True)
class WholeVolume:
    """One test case as ``test_volumes.h5`` stores it."""

    id: str
    file: Path
    image: np.ndarray  # stored dtype, (z, y, x) or (C, z, y, x)
    mask: np.ndarray  # uint8 0/1 (z, y, x)
    labels: np.ndarray  # uint8 (z, y, x) as released
    geometry: Geometry


def _read_whole(read: Callable[[Any], WholeVolume], case: Any, skip: bool) -> WholeVolume | Failed:
    try:
        return read(case)
    except InputError as err:
        if not skip:
            raise
        return Failed(err)


def write_whole_volumes(path: Path, cases: list[Any], read: Callable[[Any], WholeVolume], workers: int,
                        attrs: dict[str, Any], grid: VoxelGrid, bad: BadSamples) -> list[str]:
    """Read ``cases`` (in workers; ``read`` must pickle) into ``path``, one group per case (module docstring).

    Written under a temporary name and renamed once complete; returns the ids written (bad ones left out).
    """
    written: list[str] = []
    results = decode_in_order(partial(_read_whole, read, skip=bad.skip), cases, workers)
    with closing(results), atomic_path(path, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group("cases")
        for case, result in zip(cases, results, strict=True):
            if isinstance(result, Failed):
                bad.report(case.id, case_file(case), result.error)
                continue
            entry = group.create_group(result.id)
            entry.create_dataset("image", data=result.image, chunks=True)
            for name in ("mask", "labels"):
                entry.create_dataset(name, data=getattr(result, name), chunks=True, compression="gzip",
                                     compression_opts=4)
            g = result.geometry
            entry.attrs.update(spacing_zyx=np.asarray(g.spacing[::-1]), origin=np.asarray(g.origin),
                               direction=np.asarray(g.direction), source_file=str(result.file))
            written.append(result.id)
        f.create_dataset("ids", data=written, dtype=h5py.string_dtype("utf-8"))
        for key, value in {**attrs, **grid.attrs(), "dira_version": dira.__version__}.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
    return written


def case_file(case: Any) -> Path:
    """The file bad_samples.csv names for a case: LiTS' volume, BraTS' case folder."""
    return getattr(case, "volume", None) or case.folder


def case_rng(seed: int, case_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


# ---- LiTS ----------------------------------------------------------------------------------------------

def case_volume(case: LitsCase, settings: CropSettings) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """HU volume, label map and geometry in LPS+, at ``settings.spacing`` when set."""
    volume, labels, geometry = read_case(case)
    if settings.spacing is None:
        return volume, labels, geometry
    resampled, target = resample(volume, geometry, settings.spacing)
    return resampled, resample_labels(labels, geometry, settings.spacing), target


@dataclass(frozen=True)
class LitsPatches:
    """One case's training patches (a RowSource; read in a worker)."""

    case: LitsCase
    settings: CropSettings
    patches: dict[str, Any]  # datasets.lits.patches

    @property
    def file(self) -> Path:
        return self.case.volume

    @property
    def id(self) -> str:
        return self.case.id

    def rows(self) -> Iterator[Row]:
        volume, labels, geometry = case_volume(self.case, self.settings)
        liver = liver_mask(labels)
        rng = case_rng(self.patches["seed"], self.case.id)
        centres = draw_centres(rng, liver.astype(bool), volume > self.patches["body_hu"], self.patches["per_case"],
                               self.patches["target_fraction"])
        yield from patch_rows(self.case.id, volume, liver, geometry, centres, self.settings.shape,
                              self.settings.hu_window[0], self.settings.store)


@dataclass(frozen=True)
class LitsWhole:
    """Reads one test case whole (picklable, for the worker processes)."""

    settings: CropSettings

    def __call__(self, case: LitsCase) -> WholeVolume:
        volume, labels, geometry = case_volume(case, self.settings)
        return WholeVolume(case.id, case.volume, self.settings.store(volume), liver_mask(labels), labels, geometry)


def split_cases(cases: Iterable[int], ranges: dict[str, list[int]]) -> dict[str, list[int]]:
    """Case numbers of each split by the inclusive ``[first, last]`` ranges; InputError when ranges overlap."""
    bounds = {split: (int(ranges[split][0]), int(ranges[split][1])) for split in SPLITS}
    for split, (first, last) in bounds.items():
        if last < first:
            raise InputError(f"datasets.lits.splits.{split} must be [first, last] with first <= last, "
                             f"got {ranges[split]}")
    ordered = sorted(bounds.items(), key=lambda item: item[1])
    for (a, (_, last)), (b, (first, _)) in pairwise(ordered):
        if first <= last:
            raise InputError(f"datasets.lits.splits: {a} {bounds[a]} and {b} {bounds[b]} overlap")
    numbers = sorted(cases)
    return {split: [n for n in numbers if first <= n <= last] for split, (first, last) in bounds.items()}


def _grid(settings: CropSettings, axes: str) -> VoxelGrid:
    spacing = (float("nan"),) * 3 if settings.spacing is None else tuple(settings.spacing[::-1])
    intensity = {"unit": "HU", "window": list(settings.hu_window), "scaled_to": [0, 1],
                 "stored_as": settings.dtype + (" (x 255)" if settings.dtype == "uint8" else ""),
                 "orientation": "LPS+"}
    if axes == "czyx":
        spacing = (float("nan"), *spacing) if settings.spacing is None else (1.0, *spacing)
    return VoxelGrid(axes, spacing, intensity, spacing_field="spacing_zyx" if settings.spacing is None else "")


def prepare_lits(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    """Write ``train.h5``, ``val.h5``, ``test_volumes.h5``, ``splits.json`` and ``bad_samples.csv`` into ``out_dir``."""
    prepare_settings, lits = config["prepare"], config["datasets"]["lits"]
    settings = CropSettings.of(lits)
    if settings.hu_window[1] <= settings.hu_window[0]:
        raise InputError(f"datasets.lits.hu_window must be [lower, upper], lower < upper; got {lits['hu_window']}")
    if not 0 <= lits["patches"]["target_fraction"] <= 1:
        raise InputError(f"datasets.lits.patches.target_fraction must lie in [0, 1], "
                         f"got {lits['patches']['target_fraction']}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = read_lits(Path(root))
    numbers = split_cases(index.cases, lits["splits"])
    bad = BadSamples(prepare_settings["on_bad_sample"])
    attrs = {"dataset": "lits", "source": index.source,
             "manifest": {"root": str(index.root.resolve()), "cases": len(index.cases), "synthetic": index.synthetic},
             "provenance": provenance({"prepare": prepare_settings, "datasets": {"lits": lits}})}
    workers = prepare_settings["workers"]
    plans = [RowPlan(split, [LitsPatches(index.cases[n], settings, lits["patches"]) for n in numbers[split]])
             for split in ("train", "val")]
    layout = patch_layout(settings.shape, settings.shape, settings.dtype, _grid(settings, "zyx"))
    plans = write_row_caches(plans, out_dir, layout, workers,
                             {**attrs, "kind": "liver patches", "patches": lits["patches"]}, "prepare lits patches",
                             bad_samples=bad)
    test = write_whole_volumes(out_dir / TEST_VOLUMES, [index.cases[n] for n in numbers["test"]], LitsWhole(settings),
                               workers, {**attrs, "split": "test", "kind": "whole test volumes"},
                               _grid(settings, "zyx"), bad)
    unused = sorted(set(index.cases) - {n for split in SPLITS for n in numbers[split]})
    write_json(out_dir / SPLITS_JSON, {
        "dataset": "lits", "ranges": {split: list(lits["splits"][split]) for split in SPLITS},
        **{plan.split: [source.id for source in plan.sources] for plan in plans}, "test": test,
        "unused": [index.cases[n].id for n in unused]})
    bad.write(out_dir)
    counts = {plan.split: len(plan.sources) for plan in plans} | {"test": len(test)}
    skipped = f", {len(bad)} bad cases left out" if len(bad) else ""
    print(f"lits ({index.source}): cases {counts}, {len(unused)} unused{skipped} -> {out_dir}")


prepare = prepare_lits  # the name prepare_dataset calls

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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.cache import VoxelGrid
from dira.data.prepare.common import BadSamples
from dira.data.prepare.patches import (
    TEST_VOLUMES,
    WholeVolume,
    case_rng,
    draw_centres,
    patch_layout,
    patch_rows,
    write_whole_volumes,
)
from dira.data.prepare.rows import Row, RowPlan, write_row_caches
from dira.data.prepare.volume_crops import SPLITS_JSON, CropSettings
from dira.data.sources.lits import LitsCase, liver_mask, read_case, read_lits
from dira.data.volumes.geometry import Geometry
from dira.data.volumes.resample import resample, resample_nearest
from dira.errors import InputError
from dira.io import write_json
from dira.provenance import provenance

SPLITS = ("train", "val", "test")


# ---- LiTS ----------------------------------------------------------------------------------------------

def case_volume(case: LitsCase, settings: CropSettings) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """HU volume, label map and geometry in LPS+, at ``settings.spacing`` when set."""
    volume, labels, geometry = read_case(case)
    if settings.spacing is None:
        return volume, labels, geometry
    resampled, target = resample(volume, geometry, settings.spacing)
    return resampled, resample_nearest(labels, geometry, settings.spacing), target


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
                               _grid(settings, "zyx"), bad, "prepare lits test volumes")
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

"""BraTS 2018 -> whole-tumour patches (train / val) and whole test volumes, on Models Genesis' BMS folds.

Splits: with ``datasets.brats.folds_dir`` set, Models Genesis' ``fold_{1,2,3}.csv`` (no header, one case id
per line): test = fold 3, and fold 1 + fold 2 (in file order) shuffled by ``random.Random(split_seed)``
with the first ``round(val_fraction x n)`` held out for validation (Models Genesis: 1/8, seed 4).
Without it, the cases found are split at patient level into three seeded folds (patients in a
permutation of their sorted ids, dealt round-robin), and the same rule applies. Cases in no fold are unused.

Each case's four modalities (``t1, t1ce, t2, flair``, the channel order) are z-scored inside the brain
(voxels > 0), background 0, reoriented with the seg to LPS+ (a no-op for the release); no resampling
(1 mm isotropic already). ``train.h5`` / ``val.h5`` rows are float16 (4, *crop_shape) (c, z, y, x), with
the same per-row fields as LiTS' patches (:mod:`dira.data.prepare.lits`): ``masks`` (whole tumour,
labels 1, 2, 4), ``on_target`` (1 = centred on a tumour voxel; a ``patches.target_fraction`` share, the
rest on a random brain voxel), ``padded``, ``centres_zyx``, ``centres_world``, ``spacing_zyx``; padding is
0. ``test_volumes.h5`` has LiTS' layout with ``cases/<id>/image`` float16 (4, z, y, x), ``mask`` the whole
tumour and ``labels`` the seg as released (0, 1, 2, 4), for WT / TC / ET scoring.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
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
from dira.data.prepare.volume_crops import SPLITS_JSON
from dira.data.sources.brats import MODALITIES, BratsCase, BratsIndex, read_brats, read_case, read_folds, whole_tumour
from dira.errors import InputError
from dira.io import write_json
from dira.provenance import provenance

DTYPE = "float16"  # z-scores: float16 keeps ~3 significant digits over +-65504


def _store(patch: np.ndarray) -> np.ndarray:
    return patch.astype(np.float16)


def hold_out(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, val): ``ids`` shuffled by ``random.Random(seed)``, the first ``round(fraction x n)`` (at least one
    when there are two or more, never all) held out for validation."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(fraction * len(order)))) if len(order) >= 2 else 0
    return order[n_val:], order[:n_val]


def patient_folds(index: BratsIndex, seed: int) -> list[list[str]]:
    """Three folds of the cases found, every patient's cases in one fold: deterministic from ``seed``."""
    patients = sorted({case.patient for case in index.cases.values()})
    order = np.random.default_rng(seed).permutation(len(patients))
    folds: list[list[str]] = [[], [], []]
    for position, p in enumerate(order):
        folds[position % 3] += [c.id for c in index.cases.values() if c.patient == patients[p]]
    return [sorted(fold) for fold in folds]


def split_cases(index: BratsIndex, brats: dict[str, Any]) -> tuple[dict[str, list[str]], str]:
    """Case ids of train / val / test and where the folds came from."""
    folds_dir = brats["folds_dir"]
    if folds_dir is not None:
        folds, origin = read_folds(Path(folds_dir), index.cases), str(Path(folds_dir).resolve())
    else:
        folds, origin = patient_folds(index, brats["split_seed"]), "patient-level seeded split of the cases found"
    train, val = hold_out(folds[0] + folds[1], brats["val_fraction"], brats["split_seed"])
    return {"train": sorted(train), "val": sorted(val), "test": folds[2]}, origin


@dataclass(frozen=True)
class BratsPatches:
    """One case's training patches (a RowSource; read in a worker)."""

    case: BratsCase
    shape: tuple[int, int, int]
    patches: dict[str, Any]  # datasets.brats.patches

    @property
    def file(self) -> Path:
        return self.case.folder

    @property
    def id(self) -> str:
        return self.case.id

    def rows(self) -> Iterator[Row]:
        images, labels, geometry = read_case(self.case)
        tumour = whole_tumour(labels)
        brain = (images != 0).any(axis=0) | (labels > 0)
        centres = draw_centres(case_rng(self.patches["seed"], self.case.id), tumour.astype(bool), brain,
                               self.patches["per_case"], self.patches["target_fraction"])
        yield from patch_rows(self.case.id, images, tumour, geometry, centres, self.shape, 0.0, _store)


def read_whole(case: BratsCase) -> WholeVolume:
    images, labels, geometry = read_case(case)
    return WholeVolume(case.id, case.folder, _store(images), whole_tumour(labels), labels, geometry)


def _grid(axes: str) -> VoxelGrid:
    intensity = {"unit": "MR (arbitrary)", "normalisation": "z-score per modality inside the brain (voxels > 0)",
                 "background": 0, "channels": list(MODALITIES), "orientation": "LPS+"}
    return VoxelGrid(axes, (float("nan"),) * len(axes), intensity, spacing_field="spacing_zyx")


def prepare_brats(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    """Write ``train.h5``, ``val.h5``, ``test_volumes.h5``, ``splits.json`` and ``bad_samples.csv`` into ``out_dir``."""
    prepare_settings, brats = config["prepare"], config["datasets"]["brats"]
    if not 0 <= brats["patches"]["target_fraction"] <= 1:
        raise InputError(f"datasets.brats.patches.target_fraction must lie in [0, 1], "
                         f"got {brats['patches']['target_fraction']}")
    shape = tuple(int(n) for n in brats["crop_shape"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = read_brats(Path(root))
    splits, origin = split_cases(index, brats)
    bad = BadSamples(prepare_settings["on_bad_sample"])
    attrs = {"dataset": "brats", "source": index.source,
             "manifest": {"root": str(index.root.resolve()), "cases": len(index.cases), "folds": origin,
                          "synthetic": index.synthetic},
             "provenance": provenance({"prepare": prepare_settings, "datasets": {"brats": brats}})}
    workers = prepare_settings["workers"]
    plans = [RowPlan(split, [BratsPatches(index.cases[c], shape, brats["patches"]) for c in splits[split]])
             for split in ("train", "val")]
    layout = patch_layout((len(MODALITIES), *shape), shape, DTYPE, _grid("czyx"))
    plans = write_row_caches(plans, out_dir, layout, workers,
                             {**attrs, "kind": "whole-tumour patches", "patches": brats["patches"]},
                             "prepare brats patches", bad_samples=bad)
    test = write_whole_volumes(out_dir / TEST_VOLUMES, [index.cases[c] for c in splits["test"]], read_whole, workers,
                               {**attrs, "split": "test", "kind": "whole test volumes"}, _grid("czyx"), bad,
                               "prepare brats test volumes")
    used = {c for ids in splits.values() for c in ids}
    write_json(out_dir / SPLITS_JSON, {
        "dataset": "brats", "folds": origin, "val_fraction": brats["val_fraction"], "seed": brats["split_seed"],
        **{plan.split: [source.id for source in plan.sources] for plan in plans}, "test": test,
        "unused": sorted(set(index.cases) - used)})
    bad.write(out_dir)
    counts = {plan.split: len(plan.sources) for plan in plans} | {"test": len(test)}
    skipped = f", {len(bad)} bad cases left out" if len(bad) else ""
    print(f"brats ({index.source}): cases {counts}{skipped} -> {out_dir}")


prepare = prepare_brats  # the name prepare_dataset calls

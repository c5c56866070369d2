"""Pulmonary embolism (ECC) -> candidate crops ``fpr_{train,val,test}.h5``, from CAD-PE or, when configured, PE-CAD.

Each row is a (z, y, x) crop of ``crop_shape`` voxels centred on a candidate point (the centre voxel is the
one nearest the point, so the point lies within half a voxel of the crop's centre), HU windowed to [0, 1],
``labels`` 1 (embolus) or 0. Native spacing unless ``spacing`` is set; parts outside the volume hold the
window's lower value (``padded``).

**CAD-PE candidate scheme** (the set ships masks, not candidates; ``datasets.pe.candidates``):

- positives: one per connected component of the RefStd mask (26-connectivity, ``skimage.measure.label``), at
  the component's voxel centroid (for a curved component the centroid may fall just outside it); plus
  ``extra_positives`` points drawn among the voxels of each component of at least ``extra_min_voxels``.
- negatives: ``negatives_per_scan`` voxels drawn without replacement from the region ``negative_region``
  selects (``vessels``: HU within ``vessel_hu``, the contrast-filled vessels of a CTPA, and bone of like
  HU; ``body``: HU above ``body_hu``), each at least ``min_distance_mm`` (world mm, direction matrix
  included) from every embolus voxel; fewer when the region has fewer such voxels.
- both drawn per scan from (seed, scan id): a scan's candidates do not depend on the others.
- patients split by a seeded permutation into ``splits.fractions`` (train, val, test), by default Models
  Genesis' ECC fold proportions, 74 / 4 / 39 of 117 patients (0.63 / 0.04 / 0.33).

**PE-CAD**: the candidate table's points and labels (see :mod:`dira.data.sources.pe`), split by the split files
of ``pe_cad.fold``. Per-row fields: ``labels``, ``padded``, ``points_world`` (the candidate, mm x y z),
``centres_zyx`` / ``centres_world`` (crop centre) and ``spacing_zyx``. ``splits.json`` lists the patients;
unreadable scans go to bad_samples.csv under ``prepare.on_bad_sample: skip``. With neither set present the
reader's PEUnavailable propagates (the workflow turns it into a skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from skimage.measure import label

from dira.data.cache import VoxelGrid
from dira.data.prepare.common import BadSamples
from dira.data.prepare.rows import Row, RowLayout, RowPlan, write_row_caches
from dira.data.prepare.volume_crops import CropSettings, crop, scan_rng
from dira.data.sources.pe import (
    SPLIT_NAMES,
    CadPeCase,
    PeCadCase,
    locate,
    read_cad_pe,
    read_case,
    read_ct,
    read_pe_cad,
)
from dira.data.volumes.geometry import Geometry, array_index, index_to_world, world_to_index
from dira.data.volumes.resample import resample
from dira.errors import InputError
from dira.io import write_json
from dira.provenance import provenance

SPLIT_FILES = {"train": "fpr_train", "val": "fpr_val", "test": "fpr_test"}
SPLITS_JSON = "splits.json"
_EXTRA, _NEGATIVES, _SPLITS = range(3)
_FIELDS = {"labels": (np.uint8, ()), "padded": (np.uint8, ()), "points_world": (np.float64, (3,)),
           "centres_zyx": (np.float32, (3,)), "centres_world": (np.float64, (3,)), "spacing_zyx": (np.float32, (3,))}


def positive_points(mask: np.ndarray, geometry: Geometry, extra: int, extra_min_voxels: int,
                    rng: np.random.Generator) -> np.ndarray:
    """World mm (N, 3) of the positives: each component's centroid, then its extra points (module docstring)."""
    labels, count = label(mask, connectivity=3, return_num=True)
    if not count:
        return np.zeros((0, 3))
    voxels = np.stack(np.nonzero(labels), axis=1)  # z, y, x
    owner = labels[tuple(voxels.T)] - 1
    order = np.argsort(owner, kind="stable")
    groups = np.split(voxels[order], np.cumsum(np.bincount(owner, minlength=count))[:-1])
    points = [group.mean(axis=0) for group in groups]
    for group in groups:
        if extra and len(group) >= extra_min_voxels:
            points.extend(group[rng.choice(len(group), min(extra, len(group)), replace=False)].astype(np.float64))
    return index_to_world(geometry, np.asarray(points)[:, ::-1])


def negative_points(volume: np.ndarray, mask: np.ndarray, geometry: Geometry, settings: dict[str, Any],
                    rng: np.random.Generator) -> np.ndarray:
    """World mm (M, 3) of up to ``negatives_per_scan`` region voxels at least ``min_distance_mm`` from any embolus."""
    wanted = int(settings["negatives_per_scan"])
    if settings["negative_region"] == "vessels":
        low, high = settings["vessel_hu"]
        region = (volume >= low) & (volume <= high)
    else:
        region = volume > settings["body_hu"]
    region &= ~mask
    pool = np.flatnonzero(region)
    if not wanted or not len(pool):
        return np.zeros((0, 3))
    emboli = np.stack(np.nonzero(mask), axis=1)
    tree = cKDTree(index_to_world(geometry, emboli[:, ::-1])) if len(emboli) else None
    kept: list[np.ndarray] = []
    order = rng.permutation(len(pool))
    for chunk in np.array_split(order, max(1, len(order) // max(8 * wanted, 1024))):
        zyx = np.stack(np.unravel_index(pool[chunk], volume.shape), axis=1)
        world = index_to_world(geometry, zyx[:, ::-1].astype(np.float64))
        if tree is not None:
            distance, _ = tree.query(world, distance_upper_bound=settings["min_distance_mm"])
            world = world[~np.isfinite(distance)]  # no embolus voxel closer than the bound
        kept.append(world[:wanted - sum(len(k) for k in kept)])
        if sum(len(k) for k in kept) == wanted:
            break
    return np.concatenate(kept)


@dataclass(frozen=True)
class ScanSource:
    """One scan's crops (a RowSource, read in a worker): CAD-PE derives its candidates, PE-CAD reads them."""

    case: CadPeCase | PeCadCase
    settings: CropSettings
    candidates: dict[str, Any]  # datasets.pe.candidates

    @property
    def file(self) -> Path:
        return self.case.file

    @property
    def id(self) -> str:
        return self.case.id

    def candidate_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Geometry]:
        """(HU volume, world points (N, 3), labels (N,), native geometry) of the scan."""
        if isinstance(self.case, PeCadCase):
            volume, geometry = read_ct(self.case.image)
            locate(self.case.world, geometry, self.case.table, self.case.lines)
            return volume, self.case.world, self.case.labels, geometry
        volume, mask, geometry = read_case(self.case)
        c = self.candidates
        positives = positive_points(mask, geometry, c["extra_positives"], c["extra_min_voxels"],
                                    scan_rng(c["seed"], self.case.id, _EXTRA))
        negatives = negative_points(volume, mask, geometry, c, scan_rng(c["seed"], self.case.id, _NEGATIVES))
        labels = np.concatenate([np.ones(len(positives), np.uint8), np.zeros(len(negatives), np.uint8)])
        return volume, np.concatenate([positives, negatives]), labels, geometry

    def rows(self) -> Iterator[Row]:
        volume, world, labels, geometry = self.candidate_points()
        if self.settings.spacing is not None:
            volume, geometry = resample(volume, geometry, self.settings.spacing)
        index = array_index(world_to_index(geometry, world))  # z, y, x in the volume cropped
        shape, fill = self.settings.shape, self.settings.hu_window[0]
        for row in range(len(world)):
            start = np.rint(index[row] - (np.asarray(shape) - 1) / 2).astype(np.int64)
            hu, padded = crop(volume, start, shape, fill)
            centre = start + (np.asarray(shape) - 1) / 2
            yield Row(self.settings.store(hu), f"{self.case.id}/{row}", {
                "labels": np.uint8(labels[row]), "padded": np.uint8(padded), "points_world": world[row],
                "centres_zyx": centre.astype(np.float32), "centres_world": index_to_world(geometry, centre[::-1]),
                "spacing_zyx": np.asarray(geometry.spacing[::-1], np.float32)})


def split_patients(ids: list[str], fractions: list[float], seed: int) -> dict[str, list[str]]:
    """A seeded permutation of the sorted ids cut at the cumulative fractions (normalised); sorted per split.
    A split with a positive fraction that rounds to no patient takes one from the largest split (the 0.04 of
    validation is 3-4 of CAD-PE's 91 scans, none of a handful)."""
    fractions = np.asarray(fractions, np.float64)
    if len(fractions) != 3 or (fractions < 0).any() or fractions.sum() <= 0:
        raise InputError(f"datasets.pe.splits.fractions must be 3 non-negative numbers, got {fractions.tolist()}")
    order = np.random.default_rng([seed, _SPLITS]).permutation(sorted(ids))
    counts = np.diff(np.rint(np.cumsum(np.r_[0, fractions / fractions.sum()]) * len(ids)).astype(int))
    for split in np.flatnonzero((fractions > 0) & (counts == 0)):  # a split asked for gets a patient if any can
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[split] += 1
    parts = np.split(order, np.cumsum(counts)[:2])
    return {name: sorted(str(p) for p in part) for name, part in zip(SPLIT_NAMES, parts, strict=True)}


def _layout(settings: CropSettings) -> RowLayout:
    grid = VoxelGrid("zyx", (float("nan"),) * 3 if settings.spacing is None else tuple(settings.spacing[::-1]),
                     {"unit": "HU", "window": list(settings.hu_window), "scaled_to": [0, 1],
                      "stored_as": settings.dtype + (" (x 255)" if settings.dtype == "uint8" else "")},
                     spacing_field="spacing_zyx" if settings.spacing is None else "")
    return RowLayout(settings.shape, np.dtype(settings.dtype), _FIELDS, grid)


def prepare_pe(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    """Write ``fpr_{train,val,test}.h5``, ``splits.json`` and ``bad_samples.csv`` into ``out_dir``."""
    prepare_settings, pe = config["prepare"], config["datasets"]["pe"]
    settings = CropSettings.of(pe)
    if settings.hu_window[1] <= settings.hu_window[0]:
        raise InputError(f"datasets.pe.hu_window must be [lower, upper], lower < upper; got {pe['hu_window']}")
    if pe["candidates"]["negative_region"] not in ("vessels", "body"):
        raise InputError(f"datasets.pe.candidates.negative_region must be vessels or body, "
                         f"got {pe['candidates']['negative_region']!r}")
    root, out_dir = Path(root), Path(out_dir)
    pe_cad = pe.get("pe_cad") or {}
    if pe_cad.get("splits_dir"):  # raises PEUnavailable when absent: the caller skips the task
        pe_cad_index = read_pe_cad(root, pe_cad)
        cases: dict[str, CadPeCase | PeCadCase] = dict(pe_cad_index.cases)
        splits, dataset, synthetic = pe_cad_index.splits, "pe_cad", None
        folds = {"fold": pe_cad_index.fold}
    else:
        index = read_cad_pe(root)
        cases = dict(index.cases)
        splits = split_patients(list(cases), pe["splits"]["fractions"], pe["splits"]["seed"])
        dataset, synthetic = "cad_pe", index.synthetic
        folds = {"fractions": pe["splits"]["fractions"], "seed": pe["splits"]["seed"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    bad = BadSamples(prepare_settings["on_bad_sample"])
    attrs = {"dataset": "pe", "source": "real" if synthetic is None else "synthetic", "kind": "candidate crops",
             "manifest": {"root": str(root.resolve()), "set": dataset, "scans": len(cases), "synthetic": synthetic},
             "candidates": pe["candidates"] if dataset == "cad_pe" else {"table": str(pe_cad.get("candidates"))},
             "provenance": provenance({"prepare": prepare_settings, "datasets": {"pe": pe}})}
    plans = [RowPlan(SPLIT_FILES[split], [ScanSource(cases[p], settings, pe["candidates"]) for p in splits[split]])
             for split in SPLIT_NAMES]
    plans = write_row_caches(plans, out_dir, _layout(settings), prepare_settings["workers"], attrs,
                             f"prepare pe ({dataset})", bad_samples=bad)
    write_json(out_dir / SPLITS_JSON, {"dataset": "pe", "set": dataset, **folds,
                                       **{plan.split: [source.id for source in plan.sources] for plan in plans}})
    bad.write(out_dir)
    skipped = f", {len(bad)} bad scans left out" if len(bad) else ""
    counts = {plan.split: len(plan.sources) for plan in plans}
    print(f"pe ({dataset}, {attrs['source']}): scans {counts}{skipped} -> {out_dir}")


prepare = prepare_pe  # the name prepare_dataset calls

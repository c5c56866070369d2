"""LUNA16 -> Models Genesis pre-training cubes and false-positive-reduction crops, split by subset.

Two kinds of rows, each (z, y, x) crops of ``crop_shape`` voxels, HU windowed to [0, 1]:

- **cubes** (``pretrain_train.h5`` from subsets 0-4, ``pretrain_val.h5`` from 5-6): Models Genesis'
  ``infinite_generator_3D`` rules. Up to ``crops_per_scan`` cubes at random positions at least ``border``
  voxels from every face, at most ``tries_per_crop x crops_per_scan`` tries, a cube rejected when more than
  ``max_tissue_fraction`` of its voxels are tissue (>= ``tissue_hu``, looking ``tissue_lookahead`` slices
  ahead in z as MG's ``len_depth`` does). Positions are drawn from (seed, seriesuid), so a scan's cubes do
  not depend on which other scans are read. A volume narrower than crop + 2 borders along an axis gets
  the largest border that fits there (recorded per cube in ``border_zyx``); one narrower than the crop
  gives no cube, as in MG.
- **candidates** (``fpr_{train,val,test}.h5`` from 0-4 / 5-6 / 7-9): a crop centred on every row of
  ``candidates_V2.csv`` (the centre voxel is the one nearest the point, so the point lies within half a
  voxel of the crop's centre), ``labels`` = class; class 0 optionally subsampled per scan. Parts of a crop
  outside the volume hold the window's lower value and the row is flagged (``padded``).

Native spacing unless ``spacing`` is set (MG does not resample): then each row's spacing is its scan's
(``spacing_zyx``). Per-row fields besides ``source_index``: ``centres_zyx`` (continuous voxel index of the
crop centre in the volume cropped, native or resampled) and ``centres_world`` (mm, x y z). The scans read
go to ``splits.json``; scans that cannot be read, under ``prepare.on_bad_sample: skip``, to bad_samples.csv.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.cache import VoxelGrid
from dira.data.prepare.common import BadSamples
from dira.data.prepare.rows import Row, RowLayout, RowPlan, write_row_caches
from dira.data.prepare.shards import SHARD_ATTR, Shard, gather_bad_samples, gather_row_caches, gather_splits_json
from dira.data.prepare.volume_crops import CropSettings, crop, scan_rng
from dira.data.sources.luna16 import Luna16Index, Points, Scan, locate, read_luna16, read_scan
from dira.data.volumes.geometry import Geometry, array_index, index_to_world, world_to_index
from dira.data.volumes.resample import resample
from dira.errors import InputError
from dira.io import write_json
from dira.provenance import provenance

CUBE_SPLITS = {"pretrain_train": (0, 1, 2, 3, 4), "pretrain_val": (5, 6)}
CANDIDATE_SPLITS = {"fpr_train": (0, 1, 2, 3, 4), "fpr_val": (5, 6), "fpr_test": (7, 8, 9)}
SPLITS_JSON = "splits.json"
_CUBES, _NEGATIVES = range(2)  # independent random streams per scan


def scan_volume(scan: Scan, settings: CropSettings) -> tuple[np.ndarray, Geometry, Geometry]:
    """The scan's HU volume (z, y, x) in the spacing the crops are cut at, its geometry and the native one."""
    volume, native = read_scan(scan)
    if settings.spacing is None:
        return volume, native, native
    return *resample(volume, native, settings.spacing), native


def fitted_border(volume_shape: tuple[int, ...], extent: tuple[int, ...], border: tuple[int, ...]) -> np.ndarray | None:
    """The border (z, y, x) used: the configured one where it fits, else the largest that does; None when the
    volume is smaller than ``extent`` along some axis."""
    room = np.asarray(volume_shape) - np.asarray(extent)
    if (room < 0).any():
        return None
    return np.minimum(np.asarray(border), room // 2)


def tissue_share(hu: np.ndarray, tissue_hu: float, lookahead: int) -> float:
    """Share of the voxels of the first ``len(hu) - lookahead + 1`` slices that are tissue (>= ``tissue_hu``)
    themselves or in one of the next ``lookahead - 1`` slices: Models Genesis' rule, which favours lung."""
    tissue = hu >= tissue_hu
    depth = tissue.shape[0] - lookahead + 1
    ahead = tissue[:depth].copy()
    for k in range(1, lookahead):
        ahead |= tissue[k:k + depth]
    return float(ahead.mean())


def _centre_fields(geometry: Geometry, start: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    centre = np.asarray(start, np.float64) + (np.asarray(shape) - 1) / 2  # z, y, x
    return {"centres_zyx": centre.astype(np.float32),
            "centres_world": index_to_world(geometry, centre[::-1]),
            "spacing_zyx": np.asarray(geometry.spacing[::-1], np.float32)}


@dataclass(frozen=True)
class ScanRows:
    """What every row source of one scan says about itself (the RowSource protocol's file and id)."""

    scan: Scan

    @property
    def file(self) -> Path:
        return self.scan.header

    @property
    def id(self) -> str:
        return self.scan.seriesuid


@dataclass(frozen=True)
class CubeSource(ScanRows):
    """One scan's pre-training cubes (a RowSource; read in a worker)."""

    settings: CropSettings
    cubes: dict[str, Any]  # datasets.luna16.cubes

    def rows(self) -> Iterator[Row]:
        volume, geometry, _ = scan_volume(self.scan, self.settings)
        shape, lookahead = self.settings.shape, self.cubes["tissue_lookahead"]
        extent = (shape[0] + lookahead - 1, shape[1], shape[2])  # MG reads len_depth - 1 slices beyond the cube
        border = fitted_border(volume.shape, extent, tuple(self.cubes["border"]))
        if border is None:
            return
        rng = scan_rng(self.cubes["seed"], self.scan.seriesuid, _CUBES)
        wanted = self.cubes["crops_per_scan"]
        highest = np.asarray(volume.shape) - np.asarray(extent) - border  # inclusive
        kept = 0
        for _ in range(self.cubes["tries_per_crop"] * wanted):
            start = np.array([rng.integers(lo, hi + 1) for lo, hi in zip(border, highest, strict=True)])
            window_hu = volume[tuple(slice(a, a + n) for a, n in zip(start, extent, strict=True))]
            if tissue_share(window_hu, self.cubes["tissue_hu"], lookahead) > self.cubes["max_tissue_fraction"]:
                continue
            cube = window_hu[:shape[0]]
            yield Row(self.settings.store(cube), f"{self.scan.seriesuid}/{kept}",
                      {**_centre_fields(geometry, start, shape), "border_zyx": border.astype(np.int32)})
            kept += 1
            if kept == wanted:
                return


@dataclass(frozen=True)
class CandidateSource(ScanRows):
    """One scan's candidate crops (a RowSource; read in a worker)."""

    points: Points
    settings: CropSettings
    candidates: dict[str, Any]  # datasets.luna16.candidates

    def chosen(self) -> np.ndarray:
        """Rows of ``points`` kept: every class 1, class 0 up to ``negatives_per_scan`` (seeded), in file order."""
        limit = self.candidates["negatives_per_scan"]
        negatives = np.flatnonzero(self.points.value == 0)
        if limit is not None and len(negatives) > limit:
            rng = scan_rng(self.candidates["seed"], self.scan.seriesuid, _NEGATIVES)
            negatives = rng.choice(negatives, limit, replace=False)
        return np.sort(np.concatenate([np.flatnonzero(self.points.value == 1), negatives]))

    def rows(self) -> Iterator[Row]:
        volume, geometry, native = scan_volume(self.scan, self.settings)
        rows = self.chosen()
        if not len(rows):
            return
        locate(self.points, native, self.scan.seriesuid)  # InputError naming the CSV line of a point outside
        # z, y, x in the volume cropped: a resampled grid ends at the last native centre, so a point in the
        # outer half-voxel lands just outside it, and its crop is padded
        index = array_index(world_to_index(geometry, self.points.world))
        shape = self.settings.shape
        fill = self.settings.hu_window[0]
        for row in rows:
            start = np.rint(index[row] - (np.asarray(shape) - 1) / 2).astype(np.int64)
            hu, padded = crop(volume, start, shape, fill)
            yield Row(self.settings.store(hu), f"{self.scan.seriesuid}/{self.points.line[row]}",
                      {**_centre_fields(geometry, start, shape), "labels": np.uint8(self.points.value[row]),
                       "padded": np.uint8(padded), "csv_line": np.int64(self.points.line[row])})


def _layout(settings: CropSettings, fields: dict[str, tuple[Any, tuple[int, ...]]]) -> RowLayout:
    grid = VoxelGrid("zyx", (float("nan"),) * 3 if settings.spacing is None else tuple(settings.spacing[::-1]),
                     {"unit": "HU", "window": list(settings.hu_window), "scaled_to": [0, 1],
                      "stored_as": settings.dtype + (" (x 255)" if settings.dtype == "uint8" else "")},
                     spacing_field="spacing_zyx" if settings.spacing is None else "")
    common = {"centres_zyx": (np.float32, (3,)), "centres_world": (np.float64, (3,)),
              "spacing_zyx": (np.float32, (3,))}
    return RowLayout(settings.shape, np.dtype(settings.dtype), {**common, **fields}, grid)


def _scans_of(index: Luna16Index, subsets: tuple[int, ...], shard: Shard | None) -> list[Scan]:
    scans = [scan for scan in index.scans.values() if scan.subset in subsets]
    return shard.take(scans) if shard else scans


def prepare_luna16(root: Path, out_dir: Path, config: dict[str, Any], shard: Shard | None = None) -> None:
    """Write the cube and candidate caches, ``splits.json`` and ``bad_samples.csv`` into ``out_dir``.

    With ``shard`` K/N only the K-th of N blocks of each split's scans; ``gather`` joins the N outputs.
    """
    prepare_settings, luna = config["prepare"], config["datasets"]["luna16"]
    settings = CropSettings.of(luna)
    if settings.hu_window[1] <= settings.hu_window[0]:
        raise InputError(f"datasets.luna16.hu_window must be [lower, upper], lower < upper; got {luna['hu_window']}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = read_luna16(Path(root))
    bad = BadSamples(prepare_settings["on_bad_sample"])
    attrs = {"dataset": "luna16", "source": index.source,
             "manifest": {"root": str(index.root.resolve()), "scans": len(index.scans), "synthetic": index.synthetic},
             "provenance": provenance({"prepare": prepare_settings, "datasets": {"luna16": luna}}),
             **({SHARD_ATTR: str(shard)} if shard else {})}
    workers = prepare_settings["workers"]
    cube_plans = [RowPlan(split, [CubeSource(scan, settings, luna["cubes"])
                                  for scan in _scans_of(index, subsets, shard)])
                  for split, subsets in CUBE_SPLITS.items()]
    cube_plans = write_row_caches(cube_plans, out_dir, _layout(settings, {"border_zyx": (np.int32, (3,))}), workers,
                                  {**attrs, "kind": "pretraining cubes", "cubes": luna["cubes"]},
                                  "prepare luna16 cubes", bad_samples=bad)
    failed = {sample.id for sample in bad.samples}  # read once: not listed twice
    candidate_plans = [RowPlan(split, [CandidateSource(scan, index.scan_candidates(scan.seriesuid), settings,
                                                       luna["candidates"])
                                       for scan in _scans_of(index, subsets, shard) if scan.seriesuid not in failed])
                       for split, subsets in CANDIDATE_SPLITS.items()]
    fields = {"labels": (np.uint8, ()), "padded": (np.uint8, ()), "csv_line": (np.int64, ())}
    candidate_plans = write_row_caches(candidate_plans, out_dir, _layout(settings, fields), workers,
                                       {**attrs, "kind": "candidate crops", "candidates": luna["candidates"]},
                                       "prepare luna16 candidates", bad_samples=bad)
    write_json(out_dir / SPLITS_JSON, {
        "dataset": "luna16", "folds": {**CUBE_SPLITS, **CANDIDATE_SPLITS},
        **{plan.split: [source.id for source in plan.sources] for plan in [*cube_plans, *candidate_plans]}})
    bad.write(out_dir)
    skipped = f", {len(bad)} bad scans left out" if len(bad) else ""
    cubes = {plan.split: len(plan.sources) for plan in cube_plans}
    crops = {plan.split: len(plan.sources) for plan in candidate_plans}
    part = f" (shard {shard})" if shard else ""
    print(f"luna16 ({index.source}){part}: scans with cubes {cubes}, with candidate crops {crops}{skipped} "
          f"-> {out_dir}")


def gather_luna16(shard_dirs: list[Path], out_dir: Path) -> None:
    """Join the outputs of ``prepare_luna16`` over shards 0/N ... N-1/N into what one unsharded job writes."""
    gather_row_caches(shard_dirs, out_dir, [*CUBE_SPLITS, *CANDIDATE_SPLITS], "gather luna16")
    gather_splits_json(shard_dirs, Path(out_dir) / SPLITS_JSON)
    gather_bad_samples(shard_dirs, out_dir)


prepare = prepare_luna16  # the names prepare_dataset and gather_dataset call
gather = gather_luna16

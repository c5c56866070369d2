"""LIDC-IDRI -> nodule segmentation crops (Models Genesis' NCS task), split by patient.

Each CT series is read from DICOM (:mod:`dira.data.volumes.dicom_series`), its reads turned into physical
nodules with consensus masks (:mod:`dira.data.sources.lidc`), resampled to ``spacing`` (default 1 x 1 x 1 mm;
null keeps the native spacing) with :mod:`dira.data.volumes.resample`, the consensus masks of all its
nodules together as one volume resampled linearly and thresholded at 0.5 (on the same grid as the CT, so
that image and mask stay aligned), HU windowed to [0, 1], and one ``crop_shape`` crop (z, y, x) cut around
each nodule: the centre voxel is the resampled voxel nearest the consensus centroid, so the centroid lies
within half a voxel of the crop's centre. ``masks`` holds every nodule's consensus inside the crop (a
neighbour included). Nodules given only as < 3 mm points are left out unless ``include_small``, and
nodules marked by fewer than ``min_readers`` readers always.

Splits ``ncs_train`` / ``ncs_val`` / ``ncs_test`` are by patient (all of a patient's series together), the
patients shuffled with ``split.seed`` and cut in the proportions ``split.weights``: Models Genesis' NCS has
510 / 100 / 408 nodules, used here as shares of the patients (its own split is not published raw).
Per-row fields: ``masks`` uint8, ``centres_zyx`` (crop centre, continuous index in the resampled volume),
``centres_world`` (mm), ``nodule_world`` (the consensus centroid, mm), ``readers`` (how many marked it),
``padded``, ``spacing_zyx``. Series that cannot be read go, under ``prepare.on_bad_sample: skip``, to
bad_samples.csv. Repeated slice positions and rois placed by z are reported on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.cache import VoxelGrid
from dira.data.prepare.common import BadSamples
from dira.data.prepare.rows import Row, RowLayout, RowPlan, write_row_caches
from dira.data.prepare.volume_crops import crop
from dira.data.sources.lidc import PhysicalNodule, SeriesRef, nodules_of, read_lidc
from dira.data.volumes.dicom_series import read_series
from dira.data.volumes.geometry import Geometry, array_index, index_to_world, world_to_index
from dira.data.volumes.intensity import window
from dira.data.volumes.resample import resample
from dira.errors import InputError
from dira.io import write_json
from dira.provenance import provenance

SPLITS = ("ncs_train", "ncs_val", "ncs_test")
SPLITS_JSON = "splits.json"


@dataclass(frozen=True)
class LidcSettings:
    """What every crop shares; from ``datasets.lidc`` (the schema holds the defaults)."""

    shape: tuple[int, int, int]  # z, y, x voxels
    hu_window: tuple[float, float]
    spacing: tuple[float, float, float] | None  # x, y, z mm, or None for native
    dtype: str  # float16 or uint8
    level: float  # consensus: share of the nodule's readers
    cluster_mm: float
    min_readers: int
    include_small: bool

    @classmethod
    def of(cls, lidc: dict[str, Any]) -> LidcSettings:
        spacing = lidc["spacing"]
        settings = cls(tuple(int(n) for n in lidc["crop_shape"]), tuple(float(v) for v in lidc["hu_window"]),
                       None if spacing is None else tuple(float(s) for s in spacing), lidc["dtype"],
                       float(lidc["consensus_level"]), float(lidc["cluster_mm"]), int(lidc["min_readers"]),
                       bool(lidc["include_small"]))
        if settings.hu_window[1] <= settings.hu_window[0]:
            raise InputError(f"datasets.lidc.hu_window must be [lower, upper], lower < upper; got {lidc['hu_window']}")
        if not 0 < settings.level <= 1:
            raise InputError(f"datasets.lidc.consensus_level must be in (0, 1], got {settings.level}")
        return settings

    def store(self, hu: np.ndarray) -> np.ndarray:
        scaled = window(hu, *self.hu_window)
        if self.dtype == "uint8":
            return np.rint(scaled * 255).astype(np.uint8)
        return scaled.astype(np.float16)

    def keeps(self, nodule: PhysicalNodule) -> bool:
        return nodule.readers >= self.min_readers and (self.include_small or not nodule.small) and nodule.mask.any()


def _mask_volume(nodules: list[PhysicalNodule], shape: tuple[int, ...]) -> np.ndarray:
    """float32 (z, y, x): 1 where any nodule's consensus is."""
    out = np.zeros(shape, np.float32)
    for nodule in nodules:
        box = tuple(slice(a, a + n) for a, n in zip(nodule.start, nodule.mask.shape, strict=True))
        out[box] = np.maximum(out[box], nodule.mask)
    return out


@dataclass(frozen=True)
class SeriesSource:
    """One CT series' nodule crops (a RowSource; read in a worker)."""

    ref: SeriesRef
    settings: LidcSettings

    @property
    def file(self) -> Path:
        return self.ref.folder

    @property
    def id(self) -> str:
        return self.ref.series_uid

    def rows(self) -> Iterator[Row]:
        series = read_series(self.ref.folder)
        for dropped, kept in series.duplicates:
            print(f"lidc: {dropped}: repeats the position of {kept.name}; kept the lower InstanceNumber",
                  file=sys.stderr)
        s = self.settings
        everything = nodules_of(self.ref, series, s.cluster_mm, s.level)
        for note in {note for n in everything for m in n.members for note in m.notes}:
            print(f"lidc: {note}", file=sys.stderr)
        nodules = [n for n in everything if s.keeps(n)]
        if not nodules:
            return
        mask = _mask_volume(nodules, series.volume.shape)
        if s.spacing is None:
            volume, geometry = series.volume, series.geometry
        else:
            volume, geometry = resample(series.volume, series.geometry, s.spacing)
            mask = resample(mask, series.geometry, s.spacing)[0]
        mask = mask >= 0.5
        fill = s.hu_window[0]
        for number, nodule in enumerate(nodules):
            centre = array_index(world_to_index(geometry, nodule.centre_world))
            start = np.rint(centre - (np.asarray(s.shape) - 1) / 2).astype(np.int64)
            hu, padded = crop(volume, start, s.shape, fill)
            cut = crop(mask.view(np.uint8), start, s.shape, 0)[0].astype(np.uint8)
            yield Row(s.store(hu), f"{self.ref.series_uid}/{number}",
                      {**_centre_fields(geometry, start, s.shape), "masks": cut,
                       "nodule_world": nodule.centre_world.astype(np.float64), "readers": np.uint8(nodule.readers),
                       "padded": np.uint8(padded)})


def _centre_fields(geometry: Geometry, start: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    centre = np.asarray(start, np.float64) + (np.asarray(shape) - 1) / 2  # z, y, x
    return {"centres_zyx": centre.astype(np.float32), "centres_world": index_to_world(geometry, centre[::-1]),
            "spacing_zyx": np.asarray(geometry.spacing[::-1], np.float32)}


def split_patients(patients: list[str], weights: list[float], seed: int) -> dict[str, list[str]]:
    """Patients shuffled with ``seed`` and cut in the proportions ``weights`` (largest remainders); each split
    gets at least one patient when there are as many patients as splits."""
    weights_a = np.asarray(weights, float)
    if len(weights_a) != len(SPLITS) or (weights_a < 0).any() or weights_a.sum() <= 0:
        raise InputError(f"datasets.lidc.split.weights must be 3 non-negative numbers (train, val, test), "
                         f"got {weights}")
    share = weights_a / weights_a.sum() * len(patients)
    counts = np.floor(share).astype(int)
    for n in np.argsort(-(share - counts), kind="stable")[:len(patients) - counts.sum()]:
        counts[n] += 1
    if len(patients) >= len(SPLITS):
        for n in np.flatnonzero((counts == 0) & (weights_a > 0)):
            counts[n] += 1
            counts[int(np.argmax(counts))] -= 1
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [sorted(patients)[n] for n in order]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {split: sorted(shuffled[a:b]) for split, a, b in zip(SPLITS, bounds[:-1], bounds[1:], strict=True)}


def _layout(settings: LidcSettings) -> RowLayout:
    spacing = (float("nan"),) * 3 if settings.spacing is None else tuple(settings.spacing[::-1])
    grid = VoxelGrid("zyx", spacing, {"unit": "HU", "window": list(settings.hu_window), "scaled_to": [0, 1],
                                      "stored_as": settings.dtype + (" (x 255)" if settings.dtype == "uint8" else "")},
                     spacing_field="spacing_zyx" if settings.spacing is None else "")
    fields = {"masks": (np.uint8, settings.shape), "centres_zyx": (np.float32, (3,)),
              "centres_world": (np.float64, (3,)), "nodule_world": (np.float64, (3,)), "readers": (np.uint8, ()),
              "padded": (np.uint8, ()), "spacing_zyx": (np.float32, (3,))}
    return RowLayout(settings.shape, np.dtype(settings.dtype), fields, grid)


def prepare_lidc(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    """Write ``ncs_{train,val,test}.h5``, ``splits.json`` and ``bad_samples.csv`` into ``out_dir``."""
    prepare_settings, lidc = config["prepare"], config["datasets"]["lidc"]
    settings = LidcSettings.of(lidc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = read_lidc(Path(root))
    patients = split_patients(index.patients, list(lidc["split"]["weights"]), int(lidc["split"]["seed"]))
    bad = BadSamples(prepare_settings["on_bad_sample"])
    attrs = {"dataset": "lidc", "source": index.source, "kind": "nodule segmentation crops",
             "manifest": {"root": str(index.root.resolve()), "series": len(index.series),
                          "patients": len(index.patients), "synthetic": index.synthetic},
             "provenance": provenance({"prepare": prepare_settings, "datasets": {"lidc": lidc}})}
    plans = [RowPlan(split, [SeriesSource(ref, settings) for ref in index.series.values()
                             if ref.patient in set(patients[split])]) for split in SPLITS]
    plans = write_row_caches(plans, out_dir, _layout(settings), prepare_settings["workers"], attrs, "prepare lidc",
                             bad_samples=bad)
    write_json(out_dir / SPLITS_JSON, {
        "dataset": "lidc", "patients": patients,
        **{plan.split: [source.id for source in plan.sources] for plan in plans}})
    bad.write(out_dir)
    skipped = f", {len(bad)} bad series left out" if len(bad) else ""
    print(f"lidc ({index.source}): series per split {({p.split: len(p.sources) for p in plans})}{skipped} "
          f"-> {out_dir}")


prepare = prepare_lidc  # the name prepare_dataset calls

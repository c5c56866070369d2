"""Cutting the visual words out of one patient's scan: a crop per class it neighbours, at the class's coordinate.

Every crop is HU-windowed to [0, 1] and stored exactly as the Models Genesis cubes are (``CropSettings.store``:
float16 or uint8 x 255), from the scan read and resampled as the cubes' preparer reads it (``scan_volume``). That
fixes two things in TransVW's generator, which cuts its patches from volumes it never normalises (only its
reference copy is windowed) and whose 50-class slicing drops the last sample of every block: here every crop of
every class is kept. Parts of a crop outside the scan hold the window's lower value (air), as the candidate
crops' do.

Native crops (``resolution`` 0) have ``crop_shape``; with ``multi_resolution`` each training instance gets two
more (``resolution`` 1 and 2): the x side drawn from ``multi_resolution_scale`` x the crop's x, y and z scaled
alike, the centre shifted in y and x by up to ``multi_resolution_shift`` x the crop's x, the crop resized to
``crop_shape``. Their draws come from (seed, class, patient), so they do not depend on which other patients are
cut or in which order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.prepare.luna16 import scan_volume
from dira.data.prepare.rows import Row
from dira.data.prepare.volume_crops import CropSettings, crop, source_rng
from dira.data.sources.luna16 import Scan
from dira.discovery.frames import crop_start, orient, scan_flips, unorient
from dira.discovery.resize import resize_volume
from dira.discovery.words import Placed

RESOLUTIONS = 3  # native + two rescaled, with multi_resolution
_MULTI_RESOLUTION = 7  # random stream of the rescaled crops' draws
FIELDS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "labels": (np.int64, ()),  # class index
    "resolution": (np.uint8, ()),  # 0 = native, 1 and 2 = rescaled
    "rank": (np.int32, ()),  # the patient's place among the class's neighbours (0 = nearest)
    "centres_zyx": (np.float32, (3,)),  # crop centre, voxel index of the scan as read (resampled if spacing is set)
    "extent_zyx": (np.int32, (3,)),  # voxels the crop spans in the scan before resizing (crop_shape at resolution 0)
    "spacing_zyx": (np.float32, (3,)),  # mm between the row's voxel centres (the scan's, x extent / crop)
}


@dataclass(frozen=True)
class MultiResolution:
    """The rescaled crops' draws (config: discovery.multi_resolution*); ``enabled`` False gives native crops only."""

    enabled: bool
    scale: tuple[float, float]  # [low, high) x crop x side
    shift: float  # share of the crop's x side
    seed: int

    @classmethod
    def of(cls, discovery: Mapping[str, Any]) -> MultiResolution:
        low, high = (float(s) for s in discovery["multi_resolution_scale"])
        return cls(bool(discovery["multi_resolution"]), (low, high), float(discovery["multi_resolution_shift"]),
                   int(discovery["seed"]))

    def sides(self, crop_x: int) -> tuple[int, int]:
        """Whole-voxel x sides [low, high) at a crop of ``crop_x`` voxels (50, 80 at TransVW's 64)."""
        low = max(1, math.ceil(self.scale[0] * crop_x - 1e-9))
        return low, max(low + 1, math.ceil(self.scale[1] * crop_x - 1e-9))

    def draws(self, label: int, patient: str, crop_shape: tuple[int, int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(extent z y x, centre shift z y x) of each rescaled crop of one instance."""
        if not self.enabled:
            return []
        rng = source_rng(self.seed, f"vw{label}/{patient}", _MULTI_RESOLUTION)
        low, high = self.sides(crop_shape[2])
        most = round(self.shift * crop_shape[2])
        out = []
        for _ in range(RESOLUTIONS - 1):
            side = int(rng.integers(low, high))
            extent = np.maximum(1, np.rint(np.asarray(crop_shape) * side / crop_shape[2])).astype(np.int64)
            extent[2] = side
            shift = np.array([0, *rng.integers(-most, most + 1, size=2)], np.float64)
            out.append((extent, shift))
        return out


@dataclass(frozen=True)
class Cut:
    """One class this patient neighbours: where to cut, and whether rescaled crops join it (training only)."""

    label: int
    rank: int
    placed: Placed
    rescaled: bool


def word_id(label: int, patient: str, resolution: int) -> str:
    return f"vw{label:03d}/{patient}/r{resolution}"


def cut_crop(volume_hu: np.ndarray, start: np.ndarray, extent: np.ndarray, settings: CropSettings) -> np.ndarray:
    """``volume_hu[start : start + extent]`` (air beyond the scan), resized to the crop shape and stored."""
    hu, _ = crop(volume_hu, start, tuple(int(n) for n in extent), settings.hu_window[0])
    if tuple(extent) != settings.shape:
        # clipped to the window first, so that resizing mixes windowed values, as the network sees them
        hu = resize_volume(np.clip(hu, *settings.hu_window), settings.shape)
    return settings.store(hu)


@dataclass(frozen=True)
class PatientWords:
    """One patient's crops for every class it neighbours (a RowSource of dira.data.prepare.rows)."""

    scan: Scan
    settings: CropSettings
    cuts: tuple[Cut, ...]
    multi_resolution: MultiResolution
    mode: str  # discovery.coordinates

    @property
    def file(self) -> Path:
        return self.scan.header

    @property
    def id(self) -> str:
        return self.scan.seriesuid

    def rows(self) -> Iterator[Row]:
        volume, geometry, _ = scan_volume(self.scan, self.settings)
        flips = scan_flips(geometry, self.mode)
        oriented = orient(volume, flips)
        spacing = np.asarray(geometry.spacing[::-1], np.float64)
        shape = np.asarray(self.settings.shape)
        for cut in self.cuts:
            centre = cut.placed.centre_in(oriented.shape, self.mode)
            crops = [(shape, np.zeros(3))]
            if cut.rescaled:
                crops += self.multi_resolution.draws(cut.label, self.id, self.settings.shape)
            for resolution, (extent, shift) in enumerate(crops):
                start = crop_start(centre + shift, extent)
                cut_centre = start + (np.asarray(extent) - 1) / 2  # where the crop really sits, grid-aligned
                fields = {"labels": cut.label, "resolution": resolution, "rank": cut.rank,
                          "centres_zyx": unorient(cut_centre, oriented.shape, flips).astype(np.float32),
                          "extent_zyx": np.asarray(extent, np.int32),
                          "spacing_zyx": (spacing * extent / shape).astype(np.float32)}
                yield Row(cut_crop(oriented, start, extent, self.settings), word_id(cut.label, self.id, resolution),
                          fields)

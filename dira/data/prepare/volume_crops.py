"""What every 3D preparer shares: the crop settings of a ``datasets.<name>`` section, cutting a crop that may
reach outside its volume, and the per-source random streams that keep a scan's crops independent of the others.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from dira.data.volumes.intensity import window

SPLITS_JSON = "splits.json"  # each 3D preparer lists its splits' sources there


@dataclass(frozen=True)
class CropSettings:
    """What every CT crop shares; from a ``datasets.<name>`` section (the schema holds the defaults)."""

    shape: tuple[int, int, int]  # z, y, x voxels
    hu_window: tuple[float, float]
    spacing: tuple[float, float, float] | None  # x, y, z mm, or None for native
    dtype: str  # float16 or uint8

    @classmethod
    def of(cls, section: dict[str, Any]) -> CropSettings:
        spacing = section["spacing"]
        return cls(tuple(section["crop_shape"]), tuple(section["hu_window"]),
                   None if spacing is None else tuple(float(s) for s in spacing), section["dtype"])

    def store(self, hu: np.ndarray) -> np.ndarray:
        """HU -> the cache's values: the window mapped to [0, 1], as float16 or rounded to 0..255."""
        scaled = window(hu, *self.hu_window)
        if self.dtype == "uint8":
            return np.rint(scaled * 255).astype(np.uint8)
        return scaled.astype(np.float16)


def source_rng(seed: int, source_id: str, *streams: int) -> np.random.Generator:
    """A generator drawn from (seed, streams, source id): the same source gives the same draws whatever else is read."""
    return np.random.default_rng([seed, *streams, zlib.crc32(source_id.encode())])


def scan_rng(seed: int, seriesuid: str, stream: int) -> np.random.Generator:
    return source_rng(seed, seriesuid, stream)


def crop(volume: np.ndarray, start: np.ndarray, shape: tuple[int, ...], fill: float) -> tuple[np.ndarray, bool]:
    """``volume[start : start + shape]`` (float32), the part outside the volume set to ``fill``; and whether any was."""
    start, stop = np.asarray(start), np.asarray(start) + np.asarray(shape)
    low, high = np.maximum(start, 0), np.minimum(stop, volume.shape)
    out = np.full(shape, fill, np.float32)
    if (high > low).all():
        out[tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start, strict=True))] = \
            volume[tuple(slice(a, b) for a, b in zip(low, high, strict=True))]
    return out, bool((start < 0).any() or (stop > np.asarray(volume.shape)).any())

"""Whole scans as discovery reads them: turned to the common frame, and windowed + resized for the autoencoder.

Torch-free, so the worker processes that read scans (``threads`` of them) start without importing it.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from tqdm import tqdm

from dira.data.prepare.common import decode_in_order
from dira.data.prepare.luna16 import scan_volume
from dira.data.prepare.volume_crops import CropSettings
from dira.data.sources.luna16 import Scan
from dira.data.volumes.intensity import window
from dira.discovery.frames import orient, scan_flips
from dira.discovery.resize import resize_volume

PROGRESS_SECONDS = 5.0  # tqdm's mininterval: long runs print a line every few seconds, not every step


def oriented_volume(scan: Scan, settings: CropSettings, mode: str) -> np.ndarray:
    """The scan's HU volume as the cubes' preparer reads it, turned to the discovery frame (:mod:`.frames`)."""
    volume, geometry, _ = scan_volume(scan, settings)
    return orient(volume, scan_flips(geometry, mode))


def autoencoder_volume(scan: Scan, settings: CropSettings, shape: tuple[int, int, int], mode: str) -> np.ndarray:
    """The autoencoder's input of one scan: windowed to [0, 1] like the cubes, resized to ``shape`` (float32)."""
    return resize_volume(window(oriented_volume(scan, settings, mode), *settings.hu_window), shape)


def volume_stack(scans: list[Scan], settings: CropSettings, shape: tuple[int, int, int], mode: str,
                 workers: int) -> np.ndarray:
    """(N, *shape) float32: every scan's autoencoder input, in order, read in ``workers`` processes."""
    results = decode_in_order(partial(autoencoder_volume, settings=settings, shape=shape, mode=mode), scans, workers)
    with_progress = tqdm(results, total=len(scans), desc="discover: read scans", unit="scan",
                         mininterval=PROGRESS_SECONDS)
    return np.stack(list(with_progress)) if scans else np.zeros((0, *shape), np.float32)

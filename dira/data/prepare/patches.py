"""Segmentation patches and whole test volumes, what the LiTS and BraTS preparers share.

Training rows are patches centred on seeded voxels (a share of them on the target: liver, tumour), shifted inwards
to lie within the volume; test volumes are stored whole, one HDF5 group per case (``cases/<id>/{image, mask,
labels}`` with the case's spacing, origin and direction as attributes, and ``ids``), since their shapes differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

import dira
from dira.data.cache import VoxelGrid, portable_attrs
from dira.data.prepare.common import BadSamples, Failed, decode_in_order
from dira.data.prepare.rows import Row, RowLayout
from dira.data.prepare.volume_crops import crop, source_rng
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.errors import InputError
from dira.io import atomic_path

TEST_VOLUMES = "test_volumes.h5"


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
                        attrs: dict[str, Any], grid: VoxelGrid, bad: BadSamples, desc: str) -> list[str]:
    """Read ``cases`` (in workers; ``read`` must pickle) into ``path``, one group per case (module docstring).

    Written under a temporary name and renamed once complete; returns the ids written (bad ones left out).
    """
    written: list[str] = []
    results = decode_in_order(partial(_read_whole, read, skip=bad.skip), cases, workers)
    with closing(results), atomic_path(path, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group("cases")
        for case, result in zip(cases, tqdm(results, total=len(cases), desc=desc, unit="volume"), strict=True):
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
        for key, value in {**portable_attrs(attrs), **grid.attrs(), "dira_version": dira.__version__}.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
    return written


def case_file(case: Any) -> Path:
    """The file bad_samples.csv names for a case: LiTS' volume, BraTS' case folder."""
    return getattr(case, "volume", None) or case.folder


def case_rng(seed: int, case_id: str) -> np.random.Generator:
    return source_rng(seed, case_id)

"""What the 3D fine-tuning reads: crop caches as torch datasets, and whole test volumes one at a time.

A crop cache (``dira.data.cache`` volumetric layout) holds rows (z, y, x), or (C, z, y, x) for BraTS' four
MR channels, with ``labels`` (candidate crops: LUNA16, PE) or ``masks`` (LIDC crops, LiTS / BraTS
patches). Rows are read one chunk at a time (a real LUNA16 candidate split does not fit in memory), so
each DataLoader worker opens its own handle. The pre-trained 3D U-Nets take one channel: a multi-channel
cache is fine-tuned on the one channel ``channel`` selects.

Stored values become the network's the way the preparers wrote them: float16 rows are the values
themselves (CT windowed to [0, 1], MR z-scores), uint8 rows are [0, 1] x 255. ``test_volumes.h5`` (the
layout of ``dira.data.prepare.patches``) is read case by case, since whole CT volumes differ in shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from dira.data.augment3d import Augmentation3D, augment
from dira.data.cache import SplitCache
from dira.errors import InputError

TARGETS = ("labels", "masks")


def network_values(stored: np.ndarray) -> np.ndarray:
    """float32 network input from stored rows: uint8 rows are [0, 1] scaled by 255, others are used as stored."""
    values = stored.astype(np.float32)
    return values / 255.0 if stored.dtype == np.uint8 else values


def draw_rng() -> np.random.Generator:
    """A generator seeded from torch's: the DataLoader seeds torch per worker and epoch from the run seed, so
    the augmentation follows the run seed and repeats for the same seed and worker count."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


def select_channel(rows_shape: tuple[int, ...], channel: int | None, path: Path) -> None:
    """Check that ``channel`` fits the rows: required (an index) for (C, z, y, x) rows, None for (z, y, x)."""
    if len(rows_shape) == 3:
        if channel is not None:
            raise InputError(f"{path}: rows are single-channel (z, y, x) {rows_shape}; no channel to select")
    elif len(rows_shape) == 4:
        if channel is None or not 0 <= channel < rows_shape[0]:
            raise InputError(f"{path}: rows have {rows_shape[0]} channels {rows_shape}; channel {channel} "
                             "does not select one of them")
    else:
        raise InputError(f"{path}: expected rows (z, y, x) or (C, z, y, x), got {rows_shape}")


class CropDataset(Dataset):
    """The rows of one 3D split cache as (image float32 (1, z, y, x), target).

    ``target`` 'labels': a float32 (1,) 0/1 label (binary candidate classification); 'masks': the uint8
    (z, y, x) mask. With ``augmentation`` every read draws a new augmentation (:mod:`dira.data.augment3d`).
    """

    def __init__(self, path: Path, *, target: str, channel: int | None, augmentation: Augmentation3D | None):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: crop cache not found (run `dira prepare` first)")
        self.cache = SplitCache(self.path)
        self.target, self.channel, self.augmentation = target, channel, augmentation
        select_channel(self.cache.shape, channel, self.path)
        self.spatial_shape: tuple[int, int, int] = tuple(self.cache.shape[-3:])  # type: ignore[assignment]
        if not self.cache.has(target):
            other = "masks (a segmentation cache)" if target == "labels" else "labels (a classification cache)"
            raise InputError(f"{self.path}: no '{target}' dataset; is it {other}?")
        self.ids: list[str] = [str(i) for i in self.cache.ids]
        self.labels: np.ndarray | None = None
        if target == "labels":
            labels = self.cache.array("labels")
            if labels.shape != (len(self.cache),) or not np.isin(labels, (0, 1)).all():
                raise InputError(f"{self.path}: labels must be 0/1, one per row; got shape {labels.shape} "
                                 f"with values {sorted(int(v) for v in np.unique(labels))[:6]}")
            self.labels = labels.astype(np.uint8)
        else:
            masks = self.cache.file["masks"]
            if masks.shape != (len(self.cache), *self.spatial_shape) or masks.dtype != np.uint8:
                raise InputError(f"{self.path}: masks must be uint8 {(len(self.cache), *self.spatial_shape)}, "
                                 f"got {masks.dtype} {masks.shape}")
        self.cache.close()  # reopened on first read, in the process that reads

    def __len__(self) -> int:
        return len(self.cache)

    def image(self, index: int) -> np.ndarray:
        """Row ``index`` as network values (z, y, x), the selected channel of a multi-channel row."""
        row = self.cache.image(index)
        return network_values(row if self.channel is None else row[self.channel])

    def mask(self, index: int) -> np.ndarray:
        mask = self.cache.file["masks"][index]
        if mask.max(initial=0) > 1:
            raise InputError(f"{self.path}: masks[{index}] holds values above 1 (expected 0/1)")
        return mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.image(index)
        mask = self.mask(index) if self.target == "masks" else None
        if self.augmentation is not None:
            image, mask = augment(image, mask, draw_rng(), self.augmentation)
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).unsqueeze(0)
        if mask is not None:
            return tensor, torch.from_numpy(np.ascontiguousarray(mask))
        return tensor, torch.tensor([float(self.labels[index])])


@dataclass(frozen=True)
class CaseVolume:
    """One whole test case: its id, the network values (C, z, y, x) and the uint8 (z, y, x) mask."""

    id: str
    image: np.ndarray
    mask: np.ndarray


def case_ids(path: Path) -> list[str]:
    """The case ids of a ``test_volumes.h5``, checked to name a group each."""
    try:
        file = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path}: test volumes not found (run `dira prepare` first)") from None
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from err
    with file:
        if "ids" not in file or "cases" not in file:
            raise InputError(f"{path}: not a test-volume file (needs 'ids' and 'cases/<id>')")
        ids = [str(i) for i in file["ids"].asstr()[()]]
        missing = [i for i in ids if i not in file["cases"]]
        if missing:
            raise InputError(f"{path}: ids without a case group: {', '.join(missing[:5])}")
    return ids


def read_test_volumes(path: Path, channel: int | None) -> Iterator[CaseVolume]:
    """The cases of ``test_volumes.h5`` in file order, one in memory at a time; ``channel`` as for the crops."""
    ids = case_ids(path)
    with h5py.File(path, "r") as file:
        for case_id in ids:
            group = file["cases"][case_id]
            if "image" not in group or "mask" not in group:
                raise InputError(f"{path}: case {case_id} lacks 'image' or 'mask'")
            image, mask = group["image"], group["mask"]
            select_channel(image.shape, channel, Path(f"{path}:cases/{case_id}"))
            if tuple(image.shape[-3:]) != mask.shape or mask.dtype != np.uint8:
                raise InputError(f"{path}: case {case_id}: mask {mask.dtype} {mask.shape} does not match the "
                                 f"image {image.shape}")
            values = network_values(image[()] if channel is None else image[channel])
            mask_values = mask[()]
            if mask_values.max(initial=0) > 1:
                raise InputError(f"{path}: case {case_id}: mask holds values above 1 (expected 0/1)")
            yield CaseVolume(case_id, values[None], mask_values)

"""Classification samples from a split cache: grey uint8 images and float targets, batched for the network.

Items are the cached image (1, H, W) as uint8, through the training transform where there is one; batches
become network input on the device (:func:`network_input`: [0, 1], the grey channel repeated to three so
that torchvision ResNets and their exported weights load unchanged), after any batched resizing and
cropping (:class:`EvaluationBatch`), so that float conversion happens on the small crops, not on the
cached 1024-px images. Images are left un-normalised: DiRA's pre-training feeds [0, 1] images without
mean/std normalisation, so fine-tuning does the same.

Targets are the cached labels as floats, or what a ``target_fn`` makes of them: CheXpert caches hold
report codes (1 positive, 0 negative, -1 uncertain, -2 blank) that training turns into targets with an
uncertainty policy, drawn anew at every draw of a sample, and validation into binary targets with the
uncertain entries unknown (nan).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from torchvision.transforms import v2

from dira.data.cache import SplitCache
from dira.data.eval_crops import eval_crops
from dira.data.sources.chexpert import BLANK, NEGATIVE, UNCERTAIN, apply_uncertainty
from dira.errors import InputError

TargetFn = Callable[[np.ndarray], np.ndarray]
Batch = tuple[torch.Tensor, torch.Tensor]


class ClassificationDataset(Dataset):
    """One split: labels in memory, images read one at a time from the cache.

    Images are read per item (each DataLoader worker keeps its own open HDF5 handle) instead of loaded
    whole: ChestX-ray14's training split cached at its native 1024 px is 79 GB. One read is one chunk
    (one image), see ``benchmarks/cache_resolution.py`` for the rates.
    """

    def __init__(self, path: Path, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 target_fn: TargetFn | None = None):
        self.path = Path(path)
        self.transform = transform
        self.target_fn = target_fn
        self.cache = SplitCache(self.path)  # names the file in its FileNotFoundError / InputError
        try:
            if not self.cache.has("labels") or "label_names" not in self.cache.file["labels"].attrs:
                raise InputError(f"{self.path}: no 'labels' with 'label_names' (not a classification cache)")
            shape = self.cache.file["images"].shape
            self.labels: np.ndarray = self.cache.array("labels")
            self.ids: list[str] = [str(i) for i in self.cache.ids]
            self.label_names: list[str] = self.cache.label_names
        finally:
            self.cache.close()  # reopened on first read, in whichever process reads
        if len(shape) != 3 or shape[1] != shape[2]:
            raise InputError(f"{self.path}: expected square images (N, H, H), got {shape}")
        if self.labels.shape != (shape[0], len(self.label_names)):
            raise InputError(f"{self.path}: labels have shape {self.labels.shape}, expected "
                             f"({shape[0]}, {len(self.label_names)}) from images and label_names")
        self.cache_size = int(shape[-1])

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        """The cached image, uint8 (1, H, W)."""
        return torch.from_numpy(self.cache.image(index)).unsqueeze(0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.image(index)  # augment one uint8 channel, not three floats
        if self.transform is not None:
            image = self.transform(image)
        labels = self.labels[index]
        targets = self.target_fn(labels) if self.target_fn is not None else labels
        return image, torch.from_numpy(np.asarray(targets, dtype=np.float32))


def train_transform(input_size: int, crop_scale: Sequence[float], flip_prob: float,
                    rotation: float) -> v2.Compose:
    """The benchmark's classification augmentation (appendix C.2): a crop of the cached image, out at ``input_size``.

    RandomResizedCrop resizes only the region it cut, so a crop of a 1024-px cache keeps the detail the
    reference's crops of the 1024-px originals have, instead of enlarging a crop of a 224-px copy.
    """
    return v2.Compose([
        v2.RandomResizedCrop(input_size, scale=tuple(crop_scale), antialias=True),
        v2.RandomHorizontalFlip(p=flip_prob),
        v2.RandomRotation(degrees=rotation),
    ])


def whole_image(input_size: int) -> v2.Resize:
    """The whole cached image resized to ``input_size`` (localization: boxes map back to the full image)."""
    return v2.Resize((input_size, input_size), antialias=True)


def network_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float (N, 3, H, W) in [0, 1]; the three channels are one expanded view."""
    return images.float().div_(255.0).expand(-1, 3, -1, -1)


@dataclass(frozen=True)
class EvaluationBatch:
    """Collate of validation and test batches: images resized to ``resize``², then ``crops`` of ``size``.

    Returns uint8 images (B·V, 1, size, size), the V views of each image consecutive (V = 1 for 'center',
    10 for 'ten', see ``dira.data.eval_crops``), and the targets (B, C). Running in the loader's workers,
    the batched resize overlaps the forward passes, and only the crops travel to the device.
    """

    resize: int
    size: int
    crops: str

    def __call__(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
        images, targets = default_collate(items)
        return eval_crops(images, self.resize, self.size, self.crops).flatten(0, 1), targets


def draw_seed() -> int:
    """A seed drawn from torch's generator, for per-sample randomness outside torch.

    The DataLoader seeds torch in every worker from the loader's generator, anew each epoch, so these
    draws follow the run seed, differ between workers and epochs, and repeat for the same seed and
    worker count, like the torchvision augmentations.
    """
    return int(torch.randint(0, 2**62, ()).item())


def uncertainty_targets(policy: str) -> TargetFn:
    """Training targets: CheXpert codes through ``policy``, drawn anew each time a sample is drawn."""
    return functools.partial(_apply_policy, policy)  # a partial of a module function pickles for workers


def _apply_policy(policy: str, codes: np.ndarray) -> np.ndarray:
    return apply_uncertainty(codes, policy, np.random.default_rng(draw_seed()))


def certain_targets(codes: np.ndarray) -> np.ndarray:
    """Validation targets: blank is negative (as in training), uncertain is unknown (nan).

    Validation selects the checkpoint and stops training, so it scores only what the reports state:
    the loss and the AUC skip uncertain entries instead of inventing a value for them, which keeps the
    selection deterministic and the same for every uncertainty policy.
    """
    targets = np.where(codes == BLANK, NEGATIVE, codes).astype(np.float32)
    targets[codes == UNCERTAIN] = np.nan
    return targets

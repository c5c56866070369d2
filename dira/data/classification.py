"""Classification samples from a split cache: grey images as 3-channel tensors in [0, 1], float targets.

Images are repeated to three channels so that torchvision ResNets (and their exported weights) load
unchanged, and left un-normalised: DiRA's pre-training feeds [0, 1] images without mean/std
normalisation, so fine-tuning does the same.

Targets are the cached labels as floats, or what a ``target_fn`` makes of them: CheXpert caches hold
report codes (1 positive, 0 negative, -1 uncertain, -2 blank) that training turns into targets with an
uncertainty policy, drawn anew at every draw of a sample, and validation into binary targets with the
uncertain entries unknown (nan).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from dira.data.cache import SplitCache
from dira.data.sources.chexpert import BLANK, NEGATIVE, UNCERTAIN, apply_uncertainty
from dira.errors import InputError

TargetFn = Callable[[np.ndarray], np.ndarray]


class ClassificationDataset(Dataset):
    """All images and labels of one split, held in memory.

    Loading the whole split when the dataset is opened makes every ``__getitem__`` a tensor slice: no
    HDF5 handle per worker, no chunk reads in the training loop. The cost is memory, N·H·W bytes
    (ChestX-ray14's 75k training images at 224 px take 3.8 GB); forked DataLoader workers share the
    pages copy-on-write. For far larger sets, read per item from :class:`SplitCache` instead.
    """

    def __init__(self, path: Path, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 target_fn: TargetFn | None = None):
        self.path = Path(path)
        self.transform = transform
        self.target_fn = target_fn
        cache = SplitCache(self.path)  # names the file in its FileNotFoundError / InputError
        try:
            if not cache.has("labels") or "label_names" not in cache.file["labels"].attrs:
                raise InputError(f"{self.path}: no 'labels' with 'label_names' (not a classification cache)")
            images = cache.images()
            self.labels: np.ndarray = cache.array("labels")
            self.ids: list[str] = [str(i) for i in cache.ids]
            self.label_names: list[str] = cache.label_names
        finally:
            cache.close()
        if images.ndim != 3 or images.shape[1] != images.shape[2]:
            raise InputError(f"{self.path}: expected square images (N, H, H), got {images.shape}")
        if self.labels.shape != (len(images), len(self.label_names)):
            raise InputError(f"{self.path}: labels have shape {self.labels.shape}, expected "
                             f"({len(images)}, {len(self.label_names)}) from images and label_names")
        self.images = torch.from_numpy(images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].unsqueeze(0)  # 1×H×W uint8: augment one channel, not three
        if self.transform is not None:
            image = self.transform(image)
        image = image.float().div_(255.0).expand(3, -1, -1)
        labels = self.labels[index]
        targets = self.target_fn(labels) if self.target_fn is not None else labels
        return image, torch.from_numpy(np.asarray(targets, dtype=np.float32))


def train_transform(image_size: int, crop_scale: Sequence[float], flip_prob: float,
                    rotation: float) -> v2.Compose:
    """The benchmark's classification augmentation (appendix C.2), cropping back to the cached size."""
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True),
        v2.RandomHorizontalFlip(p=flip_prob),
        v2.RandomRotation(degrees=rotation),
    ])


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

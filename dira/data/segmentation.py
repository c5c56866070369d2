"""Segmentation samples from a split cache: grey image in [0, 1] and its binary mask, augmented together.

The augmentation is the one of the appendix (C.2) and BenchmarkTransferLearning, with albumentations:
brightness/contrast or gamma, then elastic, grid or optical distortion, then a random sized crop, each
group with the benchmark's probability. Geometric transforms move image and mask with the same
parameters and resample the mask with nearest neighbours, so it stays binary and aligned.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from dira.data.cache import SplitCache
from dira.data.classification import draw_seed
from dira.errors import InputError

REFERENCE_SIZE = 224  # the benchmark's pixel sizes are for 224 px images and scale with the image
INTENSITY_PROB = 0.3
DISTORTION_PROB = 0.3
CROP_PROB = 0.25
CROP_MIN_SHARE = 156 / 224  # the benchmark's RandomSizedCrop((156, 224), 224)


class SegmentationDataset(Dataset):
    """All images and masks of one split, held in memory (see ``ClassificationDataset`` for why).

    Items are a float image (1, H, W) in [0, 1], whose single channel the U-Net's stem repeats, and the
    mask as uint8 (H, W) 0/1.
    """

    def __init__(self, path: Path, transform: A.BaseCompose | None = None):
        self.path = Path(path)
        self.transform = transform
        cache = SplitCache(self.path)  # names the file in its FileNotFoundError / InputError
        try:
            if not cache.has("masks"):
                raise InputError(f"{self.path}: no 'masks' (not a segmentation cache)")
            self.images: np.ndarray = cache.images()
            self.masks: np.ndarray = cache.array("masks")
            self.ids: list[str] = [str(i) for i in cache.ids]
        finally:
            cache.close()
        if self.images.ndim != 3 or self.images.shape[1] != self.images.shape[2]:
            raise InputError(f"{self.path}: expected square images (N, H, H), got {self.images.shape}")
        if self.masks.shape != self.images.shape:
            raise InputError(f"{self.path}: masks have shape {self.masks.shape}, images {self.images.shape}")
        if self.masks.dtype != np.uint8 or self.masks.max(initial=0) > 1:
            raise InputError(f"{self.path}: masks must be uint8 0/1, got {self.masks.dtype} "
                             f"with values up to {self.masks.max(initial=0)}")

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.transform is not None:
            # Compose keeps its own generator; reseeding it from torch's per-worker, per-epoch stream
            # makes the augmentation follow the run seed like the rest of the data pipeline.
            self.transform.set_random_seed(draw_seed() % 2**32)
            augmented = self.transform(image=image, mask=mask)
            image, mask = augmented["image"], augmented["mask"]
        image = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0).unsqueeze(0)
        return image, torch.from_numpy(np.ascontiguousarray(mask))


def segmentation_train_transform(image_size: int) -> A.Compose:
    """The benchmark's training augmentation at ``image_size``; the output keeps the cached size."""
    return A.Compose([
        A.OneOf([A.RandomBrightnessContrast(), A.RandomGamma()], p=INTENSITY_PROB),
        distortions(image_size, p=DISTORTION_PROB),
        A.RandomSizedCrop(min_max_height=(round(CROP_MIN_SHARE * image_size), image_size),
                          size=(image_size, image_size), p=CROP_PROB),
    ])


def distortions(image_size: int, p: float) -> A.OneOf:
    """One of the benchmark's elastic, grid and optical distortions.

    The elastic field's σ and α (120 and 6 px at 224 px) scale as size and size², so the warp is the
    same share of the image at any cached size; grid and optical distortions are relative already.
    The benchmark's optical ``shift_limit`` no longer exists in albumentations 2 and is left out.
    """
    scale = image_size / REFERENCE_SIZE
    return A.OneOf([
        A.ElasticTransform(alpha=120 * scale**2, sigma=max(1.0, 6 * scale)),
        A.GridDistortion(),
        A.OpticalDistortion(distort_limit=2),
    ], p=p)

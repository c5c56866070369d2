"""Segmentation samples from a split cache: grey image in [0, 1] and its binary mask, augmented together.

The augmentation is the one of the appendix (C.2) and BenchmarkTransferLearning, with albumentations:
brightness/contrast or gamma, then elastic, grid or optical distortion, then a random sized crop, each
group with the benchmark's probability. Geometric transforms move image and mask with the same
parameters and resample the mask with nearest neighbours, so it stays binary and aligned.

A split cached at another size than the network's input (``model.input_size``) is resized once, when it
is opened: images bilinearly, masks by nearest neighbour, so that training, validation and the test
Dice all work at the input size, as the benchmark trains and scores at its 224-px resize.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import h5py
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from dira.data.cache import SplitCache
from dira.data.classification import draw_seed
from dira.errors import InputError

REFERENCE_SIZE = 224  # the benchmark's pixel sizes are for 224 px images and scale with the image
INTENSITY_PROB = 0.3
DISTORTION_PROB = 0.3
CROP_PROB = 0.25
CROP_MIN_SHARE = 156 / 224  # the benchmark's RandomSizedCrop((156, 224), 224)
RESIZE_CHUNK = 256  # images resized at a time when a split is opened: bounds the float copies


class SegmentationDataset(Dataset):
    """All images and masks of one split at ``size`` px, held in memory (segmentation sets are small).

    Items are a float image (1, size, size) in [0, 1], whose single channel the U-Net's stem repeats, and
    the mask as uint8 (size, size) 0/1. ``cache_size`` is the side the split was cached at.
    """

    def __init__(self, path: Path, size: int, transform: A.BaseCompose | None = None):
        self.path = Path(path)
        self.transform = transform
        cache = SplitCache(self.path)  # names the file in its FileNotFoundError / InputError
        try:
            if not cache.has("masks"):
                raise InputError(f"{self.path}: no 'masks' (not a segmentation cache)")
            images, masks = cache.file["images"], cache.file["masks"]
            if len(images.shape) != 3 or images.shape[1] != images.shape[2]:
                raise InputError(f"{self.path}: expected square images (N, H, H), got {images.shape}")
            if masks.shape != images.shape:
                raise InputError(f"{self.path}: masks have shape {masks.shape}, images {images.shape}")
            if masks.dtype != np.uint8:
                raise InputError(f"{self.path}: masks must be uint8 0/1, got {masks.dtype}")
            self.cache_size = int(images.shape[-1])
            # Checked as cached: a resize by nearest neighbour could drop the stray values it should report.
            if any(masks[i:i + RESIZE_CHUNK].max(initial=0) > 1 for i in range(0, len(masks), RESIZE_CHUNK)):
                raise InputError(f"{self.path}: masks must be uint8 0/1, got values above 1")
            self.images: np.ndarray = read_resized(images, size, TF.InterpolationMode.BILINEAR)
            self.masks: np.ndarray = read_resized(masks, size, TF.InterpolationMode.NEAREST_EXACT)
            self.ids: list[str] = [str(i) for i in cache.ids]
        finally:
            cache.close()

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


def read_resized(array: h5py.Dataset | np.ndarray, size: int, mode: TF.InterpolationMode) -> np.ndarray:
    """uint8 (N, H, H) -> (N, size, size), read and resized ``RESIZE_CHUNK`` images at a time.

    Bilinear images are antialiased. Masks use NEAREST_EXACT, which samples at pixel centres like the
    bilinear grid (torch's plain 'nearest' is shifted by half a source pixel), so a mask stays on the
    image it labels; its values stay 0/1.
    """
    if array.shape[-1] == size:
        return array[()]
    out = np.empty((len(array), size, size), np.uint8)
    for start in range(0, len(array), RESIZE_CHUNK):
        chunk = torch.from_numpy(array[start:start + RESIZE_CHUNK]).unsqueeze(1)
        out[start:start + len(chunk)] = TF.resize(chunk, [size, size], interpolation=mode,
                                                  antialias=mode == TF.InterpolationMode.BILINEAR)[:, 0].numpy()
    return out


def segmentation_train_transform(image_size: int) -> A.Compose:
    """The benchmark's training augmentation at ``image_size``; the output keeps that size."""
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

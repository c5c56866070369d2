"""Two augmented views of each image for pre-training, plus the restoration target of view 1.

The recipe is the DiRA reference's: RandomResizedCrop, brightness/contrast jitter (colour jitter on a grey
image), Gaussian blur, horizontal flip, then, when the stage restores, one restoration distortion on
both views. The target is view 1's crop before jitter, blur and distortion. Pixel sizes of the reference
(224 px) scale with the image.

Every random number of a sample comes from a generator seeded by (seed, epoch, index): a sample's views
do not depend on worker count, batch order or interruptions, which is what makes resumed runs bitwise
identical to uninterrupted ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from dira.data.cache import SplitCache
from dira.data.distortions import REFERENCE_SIZE, DistortionProbabilities, distort
from dira.seeding import derive_seed

VALIDATION_EPOCH = -1  # validation views are drawn from a fixed seed, identical every epoch


@dataclass(frozen=True)
class ViewSettings:
    crop_scale: tuple[float, float] = (0.2, 1.0)
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    flip_prob: float = 0.5
    target_follows_flip: bool = True

    @classmethod
    def from_config(cls, views: dict[str, Any]) -> ViewSettings:
        return cls(**{**views, "crop_scale": tuple(views["crop_scale"]), "blur_sigma": tuple(views["blur_sigma"])})


def sample_crop(rng: np.random.Generator, height: int, width: int, scale: tuple[float, float],
                ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a RandomResizedCrop: a random area share and aspect ratio, else the centre."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def _jitter(view: torch.Tensor, rng: np.random.Generator, s: ViewSettings) -> torch.Tensor:
    # ColorJitter applies its adjustments in random order; on grey images only brightness and contrast act.
    ops = [
        lambda v: TF.adjust_brightness(v, rng.uniform(1 - s.brightness, 1 + s.brightness)),
        lambda v: TF.adjust_contrast(v, rng.uniform(1 - s.contrast, 1 + s.contrast)),
    ]
    for i in rng.permutation(len(ops)):
        view = ops[i](view)
    return view


def _blur(view: torch.Tensor, rng: np.random.Generator, s: ViewSettings) -> torch.Tensor:
    sigma = rng.uniform(*s.blur_sigma) * view.shape[-1] / REFERENCE_SIZE
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(view, [kernel, kernel], [sigma, sigma])


def make_views(image: np.ndarray, rng: np.random.Generator, settings: ViewSettings,
               distortions: DistortionProbabilities | None) -> dict[str, torch.Tensor]:
    """Views of one uint8 (H, W) image: ``view1``, ``view2`` (1, H, W) in [0, 1] and, when restoring, ``target``."""
    size = [image.shape[0], image.shape[1]]
    source = torch.from_numpy(image).unsqueeze(0).float().div_(255.0)
    out: dict[str, torch.Tensor] = {}
    for name in ("view1", "view2"):
        top, left, h, w = sample_crop(rng, *size, settings.crop_scale)
        view = TF.resized_crop(source, top, left, h, w, size, antialias=True).clamp_(0.0, 1.0)
        flip = rng.random() < settings.flip_prob
        if name == "view1" and distortions is not None:
            out["target"] = TF.horizontal_flip(view) if flip and settings.target_follows_flip else view.clone()
        if rng.random() < settings.jitter_prob:
            view = _jitter(view, rng, settings)
        if rng.random() < settings.blur_prob:
            view = _blur(view, rng, settings)
        if flip:
            view = TF.horizontal_flip(view)
        if distortions is not None:
            view = torch.from_numpy(distort(view[0].numpy(), rng, distortions)).unsqueeze(0)
        out[name] = view.clamp_(0.0, 1.0).contiguous()
    return out


class TwoViewDataset(Dataset):
    """Pre-training samples from one HDF5 split; labels are never read."""

    def __init__(self, cache: SplitCache, settings: ViewSettings, distortions: DistortionProbabilities,
                 seed: int, max_images: int | None = None):
        self.cache, self.settings, self.distortions, self.seed = cache, settings, distortions, seed
        self.length = min(len(cache), max_images) if max_images else len(cache)
        self.epoch = 0
        self.restoration = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, index))
        return make_views(self.cache.image(index), rng, self.settings,
                          self.distortions if self.restoration else None)

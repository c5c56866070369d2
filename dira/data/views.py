"""The per-image recipe of the two augmented views and the restoration target: the specification.

Training makes its views batch by batch on the device (:mod:`dira.data.batch_views`); this module is what
those batched ops are tested against, image by image, and what ``benchmarks/views.py`` calls today's path.

A view is cut from the cached image at whatever size the cache holds (1024 px for the paper's
ChestX-ray14) and resized to the network's input size, as RandomResizedCrop does on the originals: a
0.2-share crop keeps the cache's detail rather than being blown up from an input-sized copy. Only the
uint8 crop is converted to float. Then come the method's photometric changes (brightness/contrast in
random order, blur, solarisation), the flip and, when the stage restores, one DiRA distortion on both
views. The target is view 1's crop before all of these, flipped with it when ``target_follows_flip``.
Blur σ and the distortions' pixel sizes are given for a 224-px view and scale with the output size.

Every random number comes from the generator passed in, so a view is a pure function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from dira.data.distortions import REFERENCE_SIZE, DistortionProbabilities, distort
from dira.data.view_recipe import ViewParams, ViewRecipe, draw_view_params

SOLARIZE_THRESHOLD = 128 / 255  # PIL's ImageOps.solarize default, which Barlow Twins uses


@dataclass(frozen=True)
class Restoration:
    """What restoring stages add to a sample, the same for every method: distortions and the target."""

    distortions: DistortionProbabilities
    target_follows_flip: bool

    @classmethod
    def from_config(cls, pretrain: dict[str, Any]) -> Restoration:
        return cls(DistortionProbabilities(**pretrain["distortion"]), pretrain["restoration"]["target_follows_flip"])


def crop_and_resize(image: np.ndarray, crop: tuple[int, int, int, int], size: int,
                    interpolation: str) -> torch.Tensor:
    """The (1, size, size) float crop in [0, 1] of a uint8 (H, W) image; only the crop is converted."""
    top, left, h, w = crop
    region = torch.from_numpy(image[top:top + h, left:left + w]).unsqueeze(0).float().div_(255.0)
    return TF.resize(region, [size, size], interpolation=InterpolationMode(interpolation),
                     antialias=True).clamp_(0.0, 1.0)


def _blur(view: torch.Tensor, sigma_at_reference: float) -> torch.Tensor:
    sigma = sigma_at_reference * view.shape[-1] / REFERENCE_SIZE
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(view, [kernel, kernel], [sigma, sigma])


def photometric(view: torch.Tensor, params: ViewParams) -> torch.Tensor:
    """Jitter, blur and solarisation of ``params``, in the order of the reference recipes."""
    for name, factor in params.jitter:
        view = TF.adjust_brightness(view, factor) if name == "brightness" else TF.adjust_contrast(view, factor)
    if params.blur_sigma is not None:
        view = _blur(view, params.blur_sigma)
    if params.solarize:
        view = TF.solarize(view, SOLARIZE_THRESHOLD)  # jitter and blur keep values in [0, 1]
    return view


def make_views(image: np.ndarray, rng: np.random.Generator, recipe: ViewRecipe,
               restoration: Restoration | None, size: int) -> dict[str, torch.Tensor]:
    """``view1``, ``view2`` (1, size, size) in [0, 1] of a uint8 (H, W) image and, when restoring, ``target``."""
    out: dict[str, torch.Tensor] = {}
    for index, name in enumerate(("view1", "view2")):
        params = draw_view_params(rng, recipe, index, *image.shape)
        crop = crop_and_resize(image, params.crop, size, recipe.interpolation)
        if index == 0 and restoration is not None:
            follow = params.flip and restoration.target_follows_flip
            out["target"] = TF.horizontal_flip(crop) if follow else crop.clone()
        view = photometric(crop, params)
        if params.flip:
            view = TF.horizontal_flip(view)
        if restoration is not None:
            view = torch.from_numpy(distort(view[0].numpy(), rng, restoration.distortions)).unsqueeze(0)
        out[name] = view.clamp_(0.0, 1.0).contiguous()
    return out

"""Two augmented views of every image of a batch, made as tensor ops on the training device.

The per-image recipe (:mod:`dira.data.view_recipe` draws, :func:`dira.data.views.make_views` renders) is the
specification; this module draws the same distributions for a whole batch from one CPU ``torch.Generator``
(crop area share and aspect with RandomResizedCrop's ten tries, flip, jitter factors and their order, blur σ,
solarisation, the distortions) and renders them in batched ops: antialiased crop resizing
(:mod:`dira.data.crop_resample`), brightness / contrast in the drawn order, Gaussian blur as one grouped
convolution, solarisation, flip, the DiRA distortions (:mod:`dira.data.batch_distortions`). The CPU loader only
reads the stored uint8 images, so a GPU that trains at thousands of images a second is not left waiting for
per-image transforms on a few CPU cores. On a CPU the same draws are rendered image by image instead
(:mod:`dira.data.cpu_views`), where batched passes would stream every intermediate through memory.

Draws depend only on the generator (seeded by the trainer from (seed, epoch, step, rank)), never on the
device, so a resumed run draws what an uninterrupted one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dira.data.batch_distortions import DistortionDraws, apply_distortions, draw_distortions
from dira.data.cpu_views import render_views
from dira.data.crop_resample import resample_crops
from dira.data.distortions import REFERENCE_SIZE
from dira.data.view_recipe import Pair, ViewRecipe
from dira.data.views import SOLARIZE_THRESHOLD, Restoration

CROP_TRIES = 10  # torchvision's RandomResizedCrop
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class ViewDraws:
    """Everything random about one view of each image: ``crops`` (B, 4) top, left, h, w in source pixels;
    ``flip``, ``brightness_first``, ``solarize`` (B,) bool; ``brightness``, ``contrast`` (B,) factors (1 when
    not jittered); ``blur_sigma`` (B,) at 224 px (0 = no blur)."""

    crops: torch.Tensor
    flip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    brightness_first: torch.Tensor
    blur_sigma: torch.Tensor
    solarize: torch.Tensor


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def draw_crops(generator: torch.Generator, n: int, height: int, width: int, scale: Pair,
               ratio: Pair = CROP_RATIO) -> torch.Tensor:
    """(n, 4) RandomResizedCrop boxes: the first of ten (area share, log-aspect) tries that fits, else the centre."""
    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand((n, CROP_TRIES), generator=generator,
                                                                   dtype=torch.float64))
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * torch.rand(
        (n, CROP_TRIES), generator=generator, dtype=torch.float64))
    w = torch.sqrt(target * aspect).round().to(torch.int64)  # round half to even, as Python's round
    h = torch.sqrt(target / aspect).round().to(torch.int64)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    pick = fits.to(torch.int8).argmax(1, keepdim=True)
    w, h, any_fit = w.gather(1, pick).squeeze(1), h.gather(1, pick).squeeze(1), fits.any(1)
    side = min(height, width)
    h, w = torch.where(any_fit, h, side), torch.where(any_fit, w, side)
    u = torch.rand((n, 2), generator=generator, dtype=torch.float64)
    top = (u[:, 0] * (height - h + 1)).floor().to(torch.int64)
    left = (u[:, 1] * (width - w + 1)).floor().to(torch.int64)
    top = torch.where(any_fit, top, (height - side) // 2)
    left = torch.where(any_fit, left, (width - side) // 2)
    return torch.stack([top, left, h, w], dim=1)


def draw_views(generator: torch.Generator, recipe: ViewRecipe, view_index: int, n: int, height: int,
               width: int) -> ViewDraws:
    """View ``view_index`` (0 or 1) of ``n`` images of ``height`` x ``width``, with that view's probabilities."""
    crops = draw_crops(generator, n, height, width, recipe.crop_scale)
    u = torch.rand((n, 5), generator=generator, dtype=torch.float64)
    flip = u[:, 0] < recipe.flip_prob[view_index]
    jitter = u[:, 1] < recipe.jitter_prob[view_index]
    brightness = _uniform(generator, n, max(0.0, 1 - recipe.brightness), 1 + recipe.brightness)
    contrast = _uniform(generator, n, max(0.0, 1 - recipe.contrast), 1 + recipe.contrast)
    blur = u[:, 3] < recipe.blur_prob[view_index]
    sigma = _uniform(generator, n, *recipe.blur_sigma)
    return ViewDraws(
        crops=crops, flip=flip,
        brightness=torch.where(jitter, brightness, 1.0), contrast=torch.where(jitter, contrast, 1.0),
        brightness_first=u[:, 2] < 0.5, blur_sigma=torch.where(blur, sigma, 0.0),
        solarize=u[:, 4] < recipe.solarize_prob[view_index],
    )


def _rows(mask: torch.Tensor, device: torch.device) -> torch.Tensor:
    return mask.nonzero().flatten().to(device)


def _factor(values: torch.Tensor, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values[rows.cpu()].to(like.device, like.dtype).view(-1, 1, 1, 1)


def adjust(views: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
           brightness_first: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_brightness / adjust_contrast (blend with the image mean), clamped, in the drawn order.

    Like every renderer here, it works in place on ``views`` and returns them.

    Every view goes through both steps as ``x * scale + shift``: brightness is (b, 0), contrast (c, (1 - c) *
    mean), and a view not jittered has factors of 1, for which the step is exactly the identity (x * 1 + 0, then
    a clamp of values already in [0, 1]); so no view is gathered out of the batch and copied back.
    """
    first = brightness_first.to(views.device).view(-1, 1, 1, 1)
    b = brightness.to(views.device, views.dtype).view(-1, 1, 1, 1)
    c = contrast.to(views.device, views.dtype).view(-1, 1, 1, 1)
    for step in (0, 1):
        is_brightness = first if step == 0 else ~first
        mean = views.mean(dim=(1, 2, 3), keepdim=True)
        scale = torch.where(is_brightness, b, c)
        shift = torch.where(is_brightness, torch.zeros_like(mean), (1.0 - c) * mean)
        views.mul_(scale).add_(shift).clamp_(0.0, 1.0)
    return views


def blur(views: torch.Tensor, sigma_at_reference: torch.Tensor) -> torch.Tensor:
    """torchvision's gaussian_blur (kernel 2 ceil(3σ) + 1, reflected borders) of the views with σ > 0.

    One grouped convolution per kernel radius (a handful), each view with its own σ: the work is the taps each
    view needs, not those of the widest kernel of the batch.
    """
    chosen = (sigma_at_reference > 0).nonzero().flatten()
    if not chosen.numel():
        return views
    size = views.shape[-1]
    sigma = sigma_at_reference[chosen].to(torch.float64) * size / REFERENCE_SIZE
    radii = torch.ceil(3 * sigma).to(torch.int64)
    for radius in radii.unique().tolist():
        group = radii == radius
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (x / sigma[group, None]) ** 2)
        kernel = (kernel / kernel.sum(1, keepdim=True)).to(views.device, views.dtype)
        rows = chosen[group].to(views.device)
        k = rows.numel()
        picked = F.pad(views[rows].transpose(0, 1), (radius, radius, radius, radius), mode="reflect")  # (1, k, ..)
        picked = picked.contiguous(memory_format=torch.channels_last)  # 2-5x faster depthwise kernels on CPUs
        picked = F.conv2d(picked, kernel.view(k, 1, -1, 1), groups=k)
        picked = F.conv2d(picked, kernel.view(k, 1, 1, -1), groups=k)
        views.index_copy_(0, rows, picked.transpose(0, 1))
    return views


def photometric(views: torch.Tensor, draws: ViewDraws) -> torch.Tensor:
    """Jitter, blur and solarisation, in the order of the reference recipes."""
    views = blur(adjust(views, draws.brightness, draws.contrast, draws.brightness_first), draws.blur_sigma)
    rows = _rows(draws.solarize, views.device)
    if rows.numel():
        x = views[rows]
        views.index_copy_(0, rows, torch.where(x >= SOLARIZE_THRESHOLD, 1.0 - x, x))
    return views


def flip(views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The views of ``mask`` mirrored left to right, the others as they are."""
    rows = _rows(mask, views.device)
    if rows.numel():
        views.index_copy_(0, rows, views[rows].flip(-1))
    return views


class TwoViewBatch:
    """``view1``, ``view2`` (B, 1, size, size) and, when restoring, ``target`` of uint8 (B, H, W) images."""

    def __init__(self, recipe: ViewRecipe, restoration: Restoration, size: int):
        self.recipe, self.restoration, self.size = recipe, restoration, size

    def draw(self, generator: torch.Generator, n: int, height: int, width: int,
             restoring: bool) -> list[tuple[ViewDraws, DistortionDraws | None]]:
        distortions = self.restoration.distortions
        return [(draw_views(generator, self.recipe, index, n, height, width),
                 draw_distortions(generator, n, self.size, distortions) if restoring else None)
                for index in (0, 1)]

    def render(self, images: torch.Tensor, draws: list[tuple[ViewDraws, DistortionDraws | None]],
               per_image: bool | None = None) -> dict[str, torch.Tensor]:
        """The drawn views of ``images``; ``per_image`` picks :mod:`dira.data.cpu_views` (by default on a CPU)
        over the batched tensor ops."""
        if images.device.type == "cpu" if per_image is None else per_image:
            return self._render_per_image(images.cpu(), draws)
        out: dict[str, torch.Tensor] = {}
        for index, (view, distortion) in enumerate(draws):
            crop = resample_crops(images, view.crops, self.size, self.recipe.interpolation)
            if index == 0 and distortion is not None:
                out["target"] = flip(crop.clone(), view.flip & self.restoration.target_follows_flip)
            rendered = flip(photometric(crop, view), view.flip)
            if distortion is not None:
                rendered = apply_distortions(rendered, distortion)
            out[f"view{index + 1}"] = rendered.clamp_(0.0, 1.0).contiguous()
        return out

    def _render_per_image(self, images: torch.Tensor, draws: list[tuple[ViewDraws, DistortionDraws | None]]
                          ) -> dict[str, torch.Tensor]:
        restoring = draws[0][1] is not None
        follows = draws[0][0].flip & self.restoration.target_follows_flip if restoring else None
        return render_views(images, draws, self.size, self.recipe.interpolation, follows)

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
                 restoring: bool) -> dict[str, torch.Tensor]:
        images = batch["image"]
        n, height, width = images.shape
        return self.render(images, self.draw(generator, n, height, width, restoring))

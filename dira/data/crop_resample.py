"""Crops of a batch of images resized to one output size with torch's antialiased filters, in one batched op.

RandomResizedCrop's resize is separable: each output row (column) is a weighted sum of a few input rows
(columns). The weights here are those of ``F.interpolate(..., antialias=True)`` (torch's ``_upsample_*_aa``:
a triangle or Keys cubic filter, a = -0.5, stretched by the scale when shrinking), written as a dense
(out × in) matrix per sample with zeros outside the crop, so a whole batch of differently sized crops is two
batched matrix products: one kernel each on a GPU, whatever the crop sizes. On a CPU the dense product wastes
its zeros (a 1024² source costs ~1 GFLOP per view), so there each crop goes through ``F.interpolate`` on its own,
the same filter (tests check both paths agree).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FILTER_TAPS = {"bilinear": 2, "bicubic": 4}  # torch's interp_size: the filter's support in input pixels at scale 1
CUBIC_A = -0.5  # torch's antialiased bicubic (as PIL's), not the -0.75 of its plain bicubic


def _filter(x: torch.Tensor, interpolation: str) -> torch.Tensor:
    x = x.abs()
    if interpolation == "bilinear":
        return (1.0 - x).clamp_(min=0.0)
    a = CUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def resize_weights(starts: torch.Tensor, lengths: torch.Tensor, full: int, out: int,
                   interpolation: str) -> torch.Tensor:
    """(B, out, full) float64 rows: output pixel i of each crop [start, start + length) of a ``full``-pixel axis."""
    if interpolation not in FILTER_TAPS:
        raise ValueError(f"interpolation must be one of {sorted(FILTER_TAPS)}, got '{interpolation}'")
    lengths = lengths.to(torch.float64)[:, None]
    scale = lengths / out
    support = torch.where(scale >= 1.0, 0.5 * FILTER_TAPS[interpolation] * scale,
                          torch.full_like(scale, 0.5 * FILTER_TAPS[interpolation]))
    inverse = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    centre = scale * (torch.arange(out, dtype=torch.float64) + 0.5)  # (B, out), in crop coordinates
    low = (centre - support + 0.5).floor().clamp(min=0.0)
    high = torch.minimum((centre + support + 0.5).floor(), lengths)
    j = torch.arange(full, dtype=torch.float64) - starts.to(torch.float64)[:, None]  # crop coordinate of each column
    j = j[:, None, :]  # (B, 1, full)
    inside = (j >= low[..., None]) & (j < high[..., None])
    weights = _filter((j - centre[..., None] + 0.5) * inverse[..., None], interpolation) * inside
    return weights / weights.sum(-1, keepdim=True)


def resample_crops(images: torch.Tensor, crops: torch.Tensor, size: int, interpolation: str,
                   dense: bool | None = None) -> torch.Tensor:
    """(B, 1, size, size) float32 in [0, 1] of uint8 (B, H, W) ``images`` cut at ``crops`` (B, 4): top, left, h, w.

    ``dense`` picks the batched matrix path; by default it runs off the CPU, each crop alone on it.
    """
    crops = crops.to(torch.int64).cpu()
    if not (images.device.type != "cpu" if dense is None else dense):
        return torch.cat([_interpolate_one(images[b], crops[b].tolist(), size, interpolation)
                          for b in range(images.shape[0])])
    _, height, width = images.shape
    rows = resize_weights(crops[:, 0], crops[:, 2], height, size, interpolation).to(images.device, torch.float32)
    cols = resize_weights(crops[:, 1], crops[:, 3], width, size, interpolation).to(images.device, torch.float32)
    out = rows @ images.to(torch.float32).div_(255.0) @ cols.transpose(1, 2)
    return out.clamp_(0.0, 1.0).unsqueeze(1)


def _interpolate_one(image: torch.Tensor, crop: list[int], size: int, interpolation: str) -> torch.Tensor:
    top, left, h, w = crop
    region = image[top:top + h, left:left + w].to(torch.float32).div_(255.0)[None, None]
    return F.interpolate(region, size=(size, size), mode=interpolation, antialias=True,
                         align_corners=False).clamp_(0.0, 1.0)

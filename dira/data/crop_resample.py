"""Crops of a batch of images resized to one output size with torch's antialiased filters, in one batched op.

RandomResizedCrop's resize is separable: each output row (column) is a weighted sum of a few input rows
(columns). The weights here are those of ``F.interpolate(..., antialias=True)`` (torch's ``_upsample_*_aa``:
a triangle or Keys cubic filter, a = -0.5, stretched by the scale when shrinking), written as a dense
(out × in) matrix per sample with zeros outside the crop, so a whole batch of differently sized crops is two
batched matrix products: one kernel each on a GPU, whatever the crop sizes.

On a CPU the dense product wastes its zeros (a 1024² source costs ~1 GFLOP per view), so there each crop is
resized on its own, in uint8 as PIL does in the reference transform (its RandomResizedCrop works on 8-bit
images): torch's vectorised uint8 kernel only serves 3- or 4-channel channels-last images, and a grey crop is
one channel, so each pass reads four neighbouring columns as the four channels of one pixel and resizes along
the other axis only (which mixes no columns), into a channels-last buffer (the aten ``out=`` variant: the
planes ``F.interpolate`` returns cost 2.5x more), with an OpenCV transpose between the passes. Both passes are
rounded to 8 bits, as PIL's: within one level of torch's own uint8 resize and of the float filter.
``benchmarks/crop_resize.py`` measures it against both of torch's kernels.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

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

    ``dense`` picks the batched matrix path (float throughout); by default it runs off the CPU, and on it each
    crop is resized alone in uint8.
    """
    if interpolation not in FILTER_TAPS:
        raise ValueError(f"interpolation must be one of {sorted(FILTER_TAPS)}, got '{interpolation}'")
    crops = crops.to(torch.int64).cpu()
    if not (images.device.type != "cpu" if dense is None else dense):
        resized = torch.stack([resize_crop_uint8(images[b], crop, size, interpolation)
                               for b, crop in enumerate(crops.tolist())])
        return resized.unsqueeze(1).to(torch.float32).div_(255.0)
    _, height, width = images.shape
    rows = resize_weights(crops[:, 0], crops[:, 2], height, size, interpolation).to(images.device, torch.float32)
    cols = resize_weights(crops[:, 1], crops[:, 3], width, size, interpolation).to(images.device, torch.float32)
    out = rows @ images.to(torch.float32).div_(255.0) @ cols.transpose(1, 2)
    return out.clamp_(0.0, 1.0).unsqueeze(1)


def resize_uint8(image: torch.Tensor, size: int, interpolation: str) -> torch.Tensor:
    """(size, size) uint8: the (h, w) uint8 ``image`` resized with torch's antialiased uint8 filter, fast."""
    return resize_crop_uint8(image, (0, 0, *image.shape), size, interpolation)


def resize_crop_uint8(image: torch.Tensor, crop: tuple[int, int, int, int], size: int,
                      interpolation: str) -> torch.Tensor:
    """(size, size) uint8: the ``crop`` (top, left, h, w) of the uint8 (H, W) ``image``, resized as
    :func:`resize_uint8` does.

    Rows first (the pass that shrinks the data most cheaply), then columns, an OpenCV transpose after each.
    PIL and torch's one-channel kernel take the columns first: the 8-bit rounding between the passes then
    differs by at most one level. A bilinear crop no larger than the output on either side is only enlarged,
    where the antialiased filter is plain bilinear interpolation (a triangle of one pixel's support, edges
    clamped): OpenCV's, whose 11-bit weights are within one level of torch's too.
    """
    top, left, height, width = crop
    region = image.numpy()[top:top + height, left:left + width]
    if interpolation == "bilinear" and height <= size and width <= size:
        return torch.from_numpy(cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR))
    across = cv2.transpose(_resize_rows(region, size, interpolation))[:width]  # (w, size)
    return torch.from_numpy(cv2.transpose(_resize_rows(across, size, interpolation))[:size])


_AA_OUT = {"bilinear": torch.ops.aten._upsample_bilinear2d_aa.out, "bicubic": torch.ops.aten._upsample_bicubic2d_aa.out}


def _resize_rows(image: np.ndarray, rows: int, interpolation: str) -> np.ndarray:
    """(rows, 4 ceil(w / 4)) uint8: ``image`` (h, w) resized along its first axis only, which mixes no columns.

    Four neighbouring columns are read as the RGBA of one pixel (the padding columns are never read back,
    whatever they hold), and the kernel writes into a channels-last buffer, so its output is the resized image
    itself, interleaved: ``F.interpolate`` would hand back planes (2.5x slower, and a merge to undo).
    """
    height, width = image.shape
    if width % 4 or not image.flags.c_contiguous:  # numpy copies uint8 rows several times faster than torch
        padded = np.empty((height, width + -width % 4), dtype=np.uint8)
        padded[:, :width] = image
        image = padded
    pixels = torch.from_numpy(image).view(height, -1, 4).permute(2, 0, 1).unsqueeze(0)  # (1, 4, h, w/4)
    out = np.empty((rows, image.shape[1]), dtype=np.uint8)
    buffer = torch.from_numpy(out).view(1, rows, -1, 4).permute(0, 3, 1, 2)  # channels-last (1, 4, rows, w/4)
    _AA_OUT[interpolation](pixels, [rows, pixels.shape[-1]], False, None, None, out=buffer)
    return out

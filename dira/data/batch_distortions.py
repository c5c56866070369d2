"""DiRA's 2D restoration distortions for whole batches: drawn on the CPU, rendered as tensor ops on the device.

The same distributions as the per-image recipe of :mod:`dira.data.distortions` (which stays the readable
specification and the oracle of the tests): one of cut-out / out-painting / local shuffling / nothing per view,
up to 10 blocks or windows with a 10 % chance of stopping after each, 10 shuffled pairs of same-sized blocks
that do not overlap (20 tries each), block sizes given at 224 px and scaled with the view.

Every random number comes from one CPU ``torch.Generator`` in a few vectorised calls per batch; rendering is
masks from box bounds (cut-out, out-painting) and one gather through a pixel index map on which the swaps are
played in order (local shuffling), so nothing loops over the images of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dira.data.distortions import REFERENCE_SIZE, DistortionProbabilities

NONE, CUTOUT, OUTPAINT, SHUFFLE = 0, 1, 2, 3
MAX_BLOCKS, STOP_PROB = 10, 0.1  # cut-out blocks and out-painting windows, as distortions.cutout / outpaint
SHUFFLE_PAIRS, SHUFFLE_TRIES = 10, 20


@dataclass(frozen=True)
class DistortionDraws:
    """A batch's distortions: ``kind`` (B,), ``boxes`` (B, 10, 4) y, x, h, w with ``active`` (B, 10) for cut-out
    and out-painting, ``pairs`` (B, 10, 6) y1, x1, y2, x2, h, w with ``pair_active`` (B, 10) for shuffling."""

    kind: torch.Tensor
    boxes: torch.Tensor
    active: torch.Tensor
    pairs: torch.Tensor
    pair_active: torch.Tensor


def _scaled(size: int, pixels: float) -> int:
    return max(1, round(pixels * size / REFERENCE_SIZE))


def _integers(generator: torch.Generator, low: torch.Tensor | int, high: torch.Tensor | int,
              shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform integers in [low, high) (numpy's ``integers``), element-wise bounds."""
    low, high = torch.as_tensor(low, dtype=torch.int64), torch.as_tensor(high, dtype=torch.int64)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return low + (u * (high - low)).floor().to(torch.int64)


def _block_count(generator: torch.Generator, n: int) -> torch.Tensor:
    """Blocks drawn before the loop stops: after each, stop with 10 %, at most 10."""
    stops = torch.rand((n, MAX_BLOCKS), generator=generator) < STOP_PROB
    stops[:, -1] = True
    return stops.to(torch.int8).argmax(1) + 1


def _boxes(generator: torch.Generator, n: int, size: int, shrink: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut-out blocks (sides 10-70 px) or, with ``shrink``, out-painting windows (sides size - U[50, 70] px)."""
    lo, hi = (_scaled(size, 50), _scaled(size, 70)) if shrink else (_scaled(size, 10), _scaled(size, 70))
    sides = _integers(generator, lo, hi + 1, (n, MAX_BLOCKS, 2))
    if shrink:
        sides = size - sides
    margin = _scaled(size, 3)
    upper = torch.clamp(size - sides - margin, min=margin + 1)
    corners = _integers(generator, margin, upper, (n, MAX_BLOCKS, 2))
    active = torch.arange(MAX_BLOCKS)[None, :] < _block_count(generator, n)[:, None]
    return torch.cat([corners, sides], dim=-1), active


def _pairs(generator: torch.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """10 pairs of 10-15 px blocks; each pair's first of 20 candidate placements that do not overlap."""
    sides = _integers(generator, _scaled(size, 10), _scaled(size, 15) + 1, (n, SHUFFLE_PAIRS, 1, 2))
    sides = sides.expand(n, SHUFFLE_PAIRS, SHUFFLE_TRIES, 2)
    first = _integers(generator, 0, size - sides + 1, (n, SHUFFLE_PAIRS, SHUFFLE_TRIES, 2))
    second = _integers(generator, 0, size - sides + 1, (n, SHUFFLE_PAIRS, SHUFFLE_TRIES, 2))
    apart = ((first - second).abs() >= sides).any(-1)  # (n, pairs, tries)
    pick = apart.to(torch.int8).argmax(-1, keepdim=True)  # the first placement that works
    take = lambda t: t.gather(2, pick[..., None].expand(-1, -1, 1, 2)).squeeze(2)  # noqa: E731
    pairs = torch.cat([take(first), take(second), take(sides)], dim=-1)
    return pairs, apart.any(-1)


def draw_distortions(generator: torch.Generator, n: int, size: int,
                     probabilities: DistortionProbabilities) -> DistortionDraws:
    """Distortions of ``n`` square views of ``size`` pixels."""
    r = torch.rand(n, generator=generator, dtype=torch.float64)
    cuts = torch.tensor([probabilities.cutout, probabilities.outpaint, probabilities.shuffle],
                        dtype=torch.float64).cumsum(0)
    kind = torch.where(r < cuts[0], CUTOUT, torch.where(r < cuts[1], OUTPAINT, torch.where(r < cuts[2], SHUFFLE, NONE)))
    cut_boxes, cut_active = _boxes(generator, n, size, shrink=False)
    out_boxes, out_active = _boxes(generator, n, size, shrink=True)
    outpainting = (kind == OUTPAINT)[:, None]
    boxes = torch.where(outpainting[..., None], out_boxes, cut_boxes)
    active = torch.where(outpainting, out_active, cut_active)
    pairs, pair_active = _pairs(generator, n, size)
    return DistortionDraws(kind, boxes, active, pairs, pair_active)


def box_coverage(boxes: torch.Tensor, active: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: the pixels inside any active box, from row and column indicator products."""
    y, x, h, w = (boxes[..., i, None] for i in range(4))
    rows = (torch.arange(height, device=boxes.device) >= y) & (torch.arange(height, device=boxes.device) < y + h)
    cols = (torch.arange(width, device=boxes.device) >= x) & (torch.arange(width, device=boxes.device) < x + w)
    rows = rows & active[..., None]
    return (rows.transpose(1, 2).float() @ cols.float()) > 0


def shuffle_index(pairs: torch.Tensor, active: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H * W) source pixel of every output pixel after the pairs' swaps, played in order on an index map."""
    n, device = pairs.shape[0], pairs.device
    scratch = height * width  # inactive block cells read and write this extra slot, never a real pixel
    index = torch.arange(scratch + 1, device=device).repeat(n, 1)
    side = int(pairs[..., 4:].max()) if pairs.numel() else 0
    dy, dx = torch.meshgrid(torch.arange(side, device=device), torch.arange(side, device=device), indexing="ij")
    dy, dx = dy.reshape(1, -1), dx.reshape(1, -1)
    for k in range(pairs.shape[1]):
        y1, x1, y2, x2, h, w = (pairs[:, k, i, None] for i in range(6))
        valid = (dy < h) & (dx < w) & active[:, k, None]
        first = torch.where(valid, (y1 + dy) * width + x1 + dx, scratch)
        second = torch.where(valid, (y2 + dy) * width + x2 + dx, scratch)
        a, b = index.gather(1, first), index.gather(1, second)
        index.scatter_(1, first, b)
        index.scatter_(1, second, a)
    return index[:, :scratch]


def apply_distortions(views: torch.Tensor, draws: DistortionDraws) -> torch.Tensor:
    """(B, 1, H, W) views with each one's distortion, in place; the draws may live on the CPU."""
    height, width = views.shape[-2:]
    out = views
    for kind in (CUTOUT, OUTPAINT):
        chosen = (draws.kind == kind).nonzero().flatten()
        if chosen.numel():
            covered = box_coverage(draws.boxes[chosen].to(views.device), draws.active[chosen].to(views.device),
                                   height, width)[:, None]
            rows = chosen.to(views.device)
            out.index_copy_(0, rows, out[rows] * (~covered if kind == CUTOUT else covered))
    chosen = (draws.kind == SHUFFLE).nonzero().flatten()
    if chosen.numel():
        index = shuffle_index(draws.pairs[chosen].to(views.device), draws.pair_active[chosen].to(views.device),
                              height, width)
        rows = chosen.to(views.device)
        out.index_copy_(0, rows, out[rows].flatten(1).gather(1, index).view(-1, 1, height, width))
    return out

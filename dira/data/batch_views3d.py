"""TransVW's pre-training views for a whole batch: drawn on the CPU, rendered as tensor ops on the cubes' device.

The per-sample recipe, and the reference of every distribution here, is :func:`dira.data.transforms3d.transvw_view`
(numpy, one generator per cube, on loader workers). This module draws the same distributions for a batch at once
from one CPU ``torch.Generator`` and renders them where the cubes are. ``draw_*`` return the random parameters
(no pixels: their statistics are tested against transforms3d's), ``render_*`` apply them.

Choices made to vectorise without changing a distribution:

- Random numbers: the generator's raw words (``random_``, ~2x faster than ``torch.rand`` on a CPU). Floats in
  [0, 1) on 53-bit lattices (24-bit for the painting noise, as ``rng.random(dtype=float32)``; the elastic noise is
  int32 / 2^31); integers by a 32-bit multiply-shift or ``random_(0, n)`` (bias < n / 2^32).
- Elastic: scipy's ``gaussian_filter`` (radius int(4 sigma + 0.5), zero padding) is one matrix per axis; an axis of
  low numerical rank (depth 32 at sigma 8: rank 10 at 1e-7) is reduced first and expanded last, the others are dense.
  ``grid_sample`` (reflection, align_corners False) is ``map_coordinates(order=1, mode='reflect')`` (half-sample
  symmetric) everywhere, borders included, up to float32 coordinates; in-plane axes (the default) warp z-slices in 2D.
- Local shuffle: a Fisher-Yates run over all blocks of the batch at once (a step per voxel of the largest block, not
  a loop over blocks); each voxel then reads what its last covering block assigns (scatter 'amax' of the drawing
  order), so later blocks win and every block reads the original, as in transforms3d.
- Non-linear: ``np.interp`` over the ``curve_points`` samples is evaluated at 2^16 + 1 equally spaced intensities and
  linearly between (float32). Against float64 ``np.interp`` on 200 random curves the largest difference was < 2e-7
  for half and < 1e-6 for 95 % of them; the tail (up to 5e-4) sits within 1.5e-5 of intensity 0 or 1 on curves
  whose control point is near an axis (x'(t) ~ 0 there).
- Painting: all slots' boxes are drawn and the continue gates say how many count; a painted voxel takes one
  U[0, 1) value of a full-cube field, which is the law of transforms3d's per-box fills (later boxes overwrite).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dira.data import transforms3d
from dira.data.batch_random import TensorParams, integers, random_words, uniform, uniform_f32
from dira.data.batch_shuffle3d import ShuffleParams, draw_shuffle, render_shuffle
from dira.data.transforms3d import TRANSVW_CHOICES

Shape = tuple[int, int, int]
CURVE_BINS = 1 << 16  # intensity bins of the Bezier lookup table
RANK_TOL = 1e-7  # singular values below this share of the largest are dropped from a smoothing matrix
CPU_CHUNK = 4  # cubes rendered at once on a CPU: bigger temporaries page-fault and leave the cache (README)


def draw_choices(generator: torch.Generator, batch: int, *, elastic_prob: float,
                 choice_probs: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(deformed?, index into TRANSVW_CHOICES) per cube, drawn as transvw_view draws them."""
    u = uniform(generator, (batch, 2))
    probs = torch.tensor(list(choice_probs), dtype=torch.float64)
    pick = torch.searchsorted(probs.cumsum(0), (u[:, 1] * probs.sum()).contiguous(), right=True)
    return u[:, 0] < elastic_prob, pick.clamp_(max=len(TRANSVW_CHOICES) - 1)


# ---- elastic deformation --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ElasticParams(TensorParams):
    noise: torch.Tensor  # (n, len(axes), z, y, x) U[-1, 1] fields before smoothing: int32 / 2^31 as drawn, or floats
    axes: tuple[int, ...]  # the displaced axes of (z, y, x), in grid_sample's coordinate order (x, y, z)
    alpha: float
    sigma: float


def draw_elastic(generator: torch.Generator, count: int, shape: Shape, *, alpha: float, sigma: float,
                 axes: Sequence[int]) -> ElasticParams:
    """One U[-1, 1] field per displaced axis and cube (transforms3d.elastic_deform's draws)."""
    if not set(axes) <= {0, 1, 2}:
        raise ValueError(f"axes must be among 0, 1, 2 (z, y, x), got {axes}")
    axes = tuple(sorted(set(axes), reverse=True))
    noise = random_words(generator, count * len(axes) * math.prod(shape)).view(count, len(axes), *shape)
    return ElasticParams(noise, axes, float(alpha), float(sigma))


def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """K[i, j]: the weight of input j in output i of scipy's gaussian_filter1d (truncate 4, mode 'constant')."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    lag = np.subtract.outer(np.arange(n), np.arange(n))
    return np.where(np.abs(lag) <= radius, taps[np.clip(lag + radius, 0, 2 * radius)], 0.0) / taps.sum()


@functools.lru_cache(maxsize=16)
def _smoothing_plan(shape: Shape, sigma: float, device: str) -> tuple[tuple[int, torch.Tensor], ...]:
    """(axis, matrix) in the order applied: low-rank axes reduced first and expanded last, the others dense."""
    reduce, dense, expand = [], [], []
    as_tensor = functools.partial(torch.tensor, dtype=torch.float32, device=device)
    for axis, n in enumerate(shape):
        kernel = gaussian_matrix(n, sigma)
        u, s, vt = np.linalg.svd(kernel)
        rank = int((s > RANK_TOL * s[0]).sum())
        if rank <= n // 2:
            reduce.append((axis, as_tensor(vt[:rank])))
            expand.insert(0, (axis, as_tensor(u[:, :rank] * s[:rank])))
        else:
            dense.append((axis, as_tensor(kernel)))
    return tuple(reduce + dense + expand)


def _smooth(noise: torch.Tensor, plan: Sequence[tuple[int, torch.Tensor]], alpha: float) -> torch.Tensor:
    """alpha x ``plan`` applied to (N, z, y, x) fields (int32 words read as U[-1, 1] x 2^31)."""
    t, alpha = noise.float(), alpha if noise.is_floating_point() else alpha * 2.0**-31
    for step, (axis, matrix) in enumerate(plan):
        matrix = matrix * alpha if step == 0 else matrix
        if axis == 0:
            t = (matrix @ t.reshape(t.shape[0], t.shape[1], -1)).view(t.shape[0], -1, *t.shape[2:])
        else:
            t = matrix @ t if axis == 1 else t @ matrix.T
    return t


def elastic_displacement(params: ElasticParams) -> torch.Tensor:
    """Displacements in voxels, (n, len(axes), z, y, x): alpha x the sigma-Gaussian of each noise field."""
    n, k, *shape = params.noise.shape
    plan = _smoothing_plan(tuple(shape), params.sigma, str(params.noise.device))
    return _smooth(params.noise.reshape(n * k, *shape), plan, params.alpha).view(n, k, *shape)


def _grid(params: ElasticParams, shape: Shape, channels: tuple[int, ...]) -> torch.Tensor:
    """grid_sample's (n, z, y, x, channels) points, normalised. With in-plane fields and a low-rank depth the last
    product (expanding z) also adds the pixel centres: they ride on the reduced fields as a row times a ones column."""
    (n, k), device = params.noise.shape[:2], params.noise.device
    scale = torch.tensor([2.0 / shape[a] for a in channels], device=device)
    centre = torch.stack(torch.meshgrid(*[(torch.arange(shape[a], device=device) * 2 + 1) / shape[a] - 1
                                          for a in reversed(channels)], indexing="ij")[::-1], -1)
    plan = _smoothing_plan(shape, params.sigma, str(device))
    if params.axes == channels == (2, 1) and plan[-1][0] == 0:
        reduced = _smooth(params.noise.reshape(n * k, *shape), plan[:-1], params.alpha)
        rank = reduced.shape[1]
        lasts = torch.empty(n, rank + 1, *shape[1:], k, device=device)
        torch.mul(reduced.view(n, k, *reduced.shape[1:]).permute(0, 2, 3, 4, 1), scale, out=lasts[:, :rank])
        lasts[:, rank] = centre
        expand = torch.cat([plan[-1][1], plan[-1][1].new_ones(shape[0], 1)], 1)
        return (expand @ lasts.view(n, rank + 1, -1)).view(n, *shape, k)
    full = torch.zeros(n, len(channels), *shape, device=device)
    full[:, [channels.index(a) for a in params.axes]] = elastic_displacement(params)
    return torch.addcmul(centre, full.permute(0, 2, 3, 4, 1), scale)


def render_elastic(cubes: torch.Tensor, params: ElasticParams) -> torch.Tensor:
    """Warp (n, z, y, x) cubes by their displacements: linear interpolation, reflected borders, clipped."""
    n, z, y, x = cubes.shape
    channels = (2, 1) if 0 not in params.axes else (2, 1, 0)
    grid = _grid(params, (z, y, x), channels)
    sample = functools.partial(F.grid_sample, mode="bilinear", padding_mode="reflection", align_corners=False)
    if len(channels) == 2:
        return sample(cubes.reshape(n * z, 1, y, x), grid.view(n * z, y, x, 2)).view(n, z, y, x).clamp_(0.0, 1.0)
    return sample(cubes.unsqueeze(1), grid).view(n, z, y, x).clamp_(0.0, 1.0)


# ---- non-linear intensity -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveParams(TensorParams):
    points: torch.Tensor  # (n, 2, 2) float64: control points P1, P2 as (x, y); P0 = (0, 0), P3 = (1, 1)
    reverse: torch.Tensor  # (n,) bool: the decreasing curve
    curve_points: int


def draw_curve(generator: torch.Generator, count: int, *, reverse_prob: float, curve_points: int) -> CurveParams:
    """Two control points in [0, 1)^2 and the reversal, per cube (transforms3d.bezier_lookup's draws)."""
    u = uniform(generator, (count, 5))
    return CurveParams(u[:, :4].reshape(count, 2, 2), u[:, 4] < reverse_prob, int(curve_points))


@functools.lru_cache(maxsize=4)
def _bernstein(points: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(6, points): weights of P1, P2, P3 at t = linspace(0, 1), then at 1 - t (the reversed ys)."""
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64, device=device)
    weights = torch.stack([3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3])
    return torch.cat([weights, weights.flip(1)]).to(dtype)


def _curve_coordinates(params: CurveParams, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    weights = _bernstein(params.curve_points, str(params.points.device), dtype)
    p, flip = params.points.to(dtype), params.reverse[:, None].to(dtype)
    ones = torch.ones_like(p[:, 0, :1])
    y = torch.cat([p[:, :, 1], ones], 1)
    return torch.cat([p[:, :, 0], ones], 1) @ weights[:3], torch.cat([y * (1 - flip), y * flip], 1) @ weights


def curve_samples(params: CurveParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 (xs, ys), (n, curve_points) each, that transforms3d.bezier_lookup gives for these points."""
    xs, ys = _curve_coordinates(params, torch.float64)
    return torch.cummax(xs, 1).values, ys


def curve_table(params: CurveParams, bins: int = CURVE_BINS) -> torch.Tensor:
    """np.interp(k / bins, xs, ys) for k = 0 .. bins, (n, bins + 1), from float32 samples: an edge's segment is the
    count of samples <= it, less one (a bincount of ceil(xs * bins), exact for bins = 2^k). xs is monotone up to
    rounding, which transforms3d's maximum.accumulate removes and which moves an edge by no more than that."""
    xs, ys = _curve_coordinates(params, torch.float32)
    n, m = xs.shape
    slot = (xs * bins).ceil_().int().clamp_(0, bins)
    slot += torch.arange(0, n * (bins + 1), bins + 1, device=xs.device, dtype=torch.int32)[:, None]
    counts = torch.bincount(slot.view(-1), minlength=n * (bins + 1)).view(n, bins + 1)
    segment = counts.cumsum_(1).sub_(1).clamp_(0, m - 2).add_(torch.arange(0, n * m, m, device=xs.device)[:, None])
    segment = segment.view(-1)
    x0, y0 = xs.view(-1).index_select(0, segment), ys.view(-1).index_select(0, segment)
    segment += 1
    dx, dy = xs.view(-1).index_select(0, segment).sub_(x0), ys.view(-1).index_select(0, segment).sub_(y0)
    w = torch.arange(bins + 1, device=xs.device, dtype=torch.float32).div_(bins).repeat(n).sub_(x0)
    table = y0.addcmul_(w.div_(dx.clamp_(min=1e-30)).clamp_(0.0, 1.0), dy).view(n, bins + 1)
    table[:, -1] = ys[:, -1]  # np.interp at xs[-1] = 1 (where x1 = x0 can happen)
    return table


def render_curve(cubes: torch.Tensor, params: CurveParams) -> torch.Tensor:
    """Map (n, ...) intensities through each cube's curve: the table, linear between its edges, clipped."""
    n, *rest = cubes.shape
    table = curve_table(params)
    bins = table.shape[1] - 1
    step = torch.diff(table, dim=1, append=table[:, -1:]).view(-1)
    u = cubes.clamp(0.0, 1.0).mul_(bins)
    k = u.int().clamp_(max=bins - 1)  # floor, as u >= 0
    u.sub_(k)
    k = k.add_(torch.arange(0, n * (bins + 1), bins + 1, device=cubes.device, dtype=torch.int32).view(
        -1, *[1] * len(rest))).view(-1)
    low = table.view(-1).index_select(0, k).view_as(cubes)
    return low.addcmul_(u, step.index_select(0, k).view_as(cubes)).clamp_(0.0, 1.0)


# ---- in- and out-painting --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxParams(TensorParams):
    active: torch.Tensor  # (n, slots) bool: the boxes drawn (a prefix of the slots)
    lower: torch.Tensor  # (n, slots, 3) int64 first voxel (z, y, x)
    upper: torch.Tensor  # (n, slots, 3) int64 one past the last voxel
    noise: torch.Tensor  # (n, z, y, x) float32 U[0, 1)


def _draw_boxes(generator: torch.Generator, count: int, shape: Shape, low: list[int], high: list[int], *,
                slots: int, continue_prob: float, first_free: bool, margin: int) -> BoxParams:
    """transforms3d._draw_boxes for ``count`` cubes: slot i counts while every gate up to it is < continue_prob."""
    gates = uniform(generator, (count, slots)) < continue_prob
    gates[:, 0] |= first_free
    sides = integers(generator, torch.tensor(low).expand(count, slots, 3), torch.tensor(high))
    room = torch.tensor(shape) - sides
    lowest = room.clamp(max=margin)
    corner = integers(generator, lowest, torch.maximum(lowest, room - margin))
    return BoxParams(gates.cumprod(1).bool(), corner, corner + sides, uniform_f32(generator, (count, *shape)))


def draw_inpaint(generator: torch.Generator, count: int, shape: Shape, *, max_blocks: int, continue_prob: float,
                 min_side_divisor: int, max_side_divisor: int, margin: int) -> BoxParams:
    """transforms3d.inpaint_boxes' boxes and the noise that fills them."""
    low = [max(1, d // min_side_divisor) for d in shape]
    high = [max(lo, d // max_side_divisor) for lo, d in zip(low, shape, strict=True)]
    return _draw_boxes(generator, count, shape, low, high, slots=max_blocks, continue_prob=continue_prob,
                       first_free=False, margin=margin)


def draw_outpaint(generator: torch.Generator, count: int, shape: Shape, *, max_windows: int, continue_prob: float,
                  shrink_sevenths: Sequence[int], margin: int) -> BoxParams:
    """transforms3d.outpaint_boxes' kept windows and the noise around them."""
    lo_n, hi_n = shrink_sevenths
    low = [max(1, d - hi_n * d // 7) for d in shape]
    high = [max(lo, d - lo_n * d // 7) for lo, d in zip(low, shape, strict=True)]
    return _draw_boxes(generator, count, shape, low, high, slots=max_windows, continue_prob=continue_prob,
                       first_free=True, margin=margin)


def box_mask(params: BoxParams, shape: Shape) -> torch.Tensor:
    """(n, z, y, x) bool: inside any active box."""
    inside = [((at >= params.lower[..., axis, None]) & (at < params.upper[..., axis, None]) & params.active[..., None])
              .float() for axis, at in enumerate(torch.arange(d, device=params.lower.device) for d in shape)]
    return torch.einsum("nkz,nky,nkx->nzyx", *inside) > 0


def render_inpaint(cubes: torch.Tensor, params: BoxParams) -> torch.Tensor:
    return torch.where(box_mask(params, tuple(cubes.shape[1:])), params.noise, cubes)


def render_outpaint(cubes: torch.Tensor, params: BoxParams) -> torch.Tensor:
    return torch.where(box_mask(params, tuple(cubes.shape[1:])), cubes, params.noise)


# ---- the composer ----------------------------------------------------------------------------------------------
_PARTS = {"local-shuffle": (draw_shuffle, "shuffling", render_shuffle),
          "non-linear": (draw_curve, "nonlinearity", render_curve),
          "in-paint": (draw_inpaint, "inpainting", render_inpaint),
          "out-paint": (draw_outpaint, "outpainting", render_outpaint)}


@dataclass(frozen=True)
class TransVWParams:
    """Everything random about a batch: the deformed rows and their fields, each cube's choice, and for each chosen
    kind its rows and parameters (``parts[kind] = (rows, params)``)."""

    elastic_rows: torch.Tensor
    elastic: ElasticParams | None
    choice: torch.Tensor  # (B,) index into TRANSVW_CHOICES
    parts: dict[str, tuple[torch.Tensor, Any]]

    def to(self, device: torch.device) -> TransVWParams:
        parts = {kind: (rows.to(device), part.to(device)) for kind, (rows, part) in self.parts.items()}
        elastic = self.elastic.to(device) if self.elastic else None
        return TransVWParams(self.elastic_rows.to(device), elastic, self.choice.to(device), parts)


def draw_transvw(generator: torch.Generator, batch: int, shape: Shape, views: Mapping[str, Any]) -> TransVWParams:
    """The batch's draws, part by part, each vectorised over the cubes that need it."""
    deformed, choice = draw_choices(generator, batch, elastic_prob=views["elastic_prob"],
                                    choice_probs=views["choice_probs"])
    elastic_rows = deformed.nonzero().view(-1)
    elastic = draw_elastic(generator, len(elastic_rows), shape, **views["elastic"]) if len(elastic_rows) else None
    parts = {}
    for index, kind in enumerate(TRANSVW_CHOICES):
        rows = (choice == index).nonzero().view(-1)
        if len(rows):
            draw, section, _ = _PARTS[kind]
            where = () if draw is draw_curve else (shape,)
            parts[kind] = (rows, draw(generator, len(rows), *where, **views[section]))
    return TransVWParams(elastic_rows, elastic, choice, parts)


def _render_rows(render: Any, cubes: torch.Tensor, params: Any) -> torch.Tensor:
    """``render`` at once off the CPU; on a CPU in chunks of CPU_CHUNK cubes where every parameter is per cube."""
    if cubes.device.type != "cpu" or len(cubes) <= CPU_CHUNK or isinstance(params, ShuffleParams):
        return render(cubes, params)
    names = [f.name for f in dataclasses.fields(params) if isinstance(getattr(params, f.name), torch.Tensor)]
    return torch.cat([render(cubes[i:i + CPU_CHUNK], dataclasses.replace(
        params, **{name: getattr(params, name)[i:i + CPU_CHUNK] for name in names}))
        for i in range(0, len(cubes), CPU_CHUNK)])


def render_transvw(cubes: torch.Tensor, params: TransVWParams) -> torch.Tensor:
    """The views of (B, z, y, x) float32 cubes in [0, 1], on their device, clipped to [0, 1]."""
    rows, every = params.elastic_rows, len(params.elastic_rows) == len(cubes)
    if params.elastic is None:
        x = cubes.clone()
    else:
        deformed = _render_rows(render_elastic, cubes if every else cubes.index_select(0, rows), params.elastic)
        x = deformed if every else cubes.index_copy(0, rows, deformed)
    for kind, (rows, part) in params.parts.items():
        x.index_copy_(0, rows, _render_rows(_PARTS[kind][2], x.index_select(0, rows), part))
    return x.clamp_(0.0, 1.0)


def validate_views(views: Mapping[str, Any]) -> None:
    """The checks transvw_view and its transforms make, made once: keys, choice_probs, axes."""
    inspect.signature(transforms3d.transvw_view).bind(None, None, **views)
    probs = np.asarray(views["choice_probs"], dtype=np.float64)
    if probs.shape != (4,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"choice_probs must be 4 non-negative shares summing to 1, got {views['choice_probs']}")
    if not set(views["elastic"]["axes"]) <= {0, 1, 2}:
        raise ValueError(f"axes must be among 0, 1, 2 (z, y, x), got {views['elastic']['axes']}")
    for draw, section, _ in [(draw_elastic, "elastic", None), *_PARTS.values()]:
        inspect.signature(draw).bind(*((None, 0) if draw is draw_curve else (None, 0, (1, 1, 1))), **views[section])


def cubes_in_unit_range(cubes: torch.Tensor) -> torch.Tensor:
    """Stored cubes as float32 in [0, 1]: uint8 rows are 0..255 levels of the window, float rows already scaled."""
    return cubes.float().div_(255.0) if cubes.dtype == torch.uint8 else cubes.float()


class TransVWBatchViews:
    """TransVW's (view, target) for a batch: every draw on the CPU generator, the rendering on the cubes' device."""

    def __init__(self, views: Mapping[str, Any]):
        validate_views(views)
        self.views = views

    def __call__(self, cubes: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if cubes.ndim != 4:
            raise ValueError(f"expected (B, z, y, x) cubes, got shape {tuple(cubes.shape)}")
        params = draw_transvw(generator, cubes.shape[0], tuple(cubes.shape[1:]), self.views).to(cubes.device)
        target = cubes_in_unit_range(cubes)
        return {"view": render_transvw(target, params).unsqueeze(1), "target": target.unsqueeze(1)}

"""Models Genesis' local shuffling for a batch of cubes: blocks drawn on the CPU, shuffled with one scatter.

Every block reads from the original cube and a later block overwrites an earlier one where they overlap, as in
:func:`dira.data.transforms3d.local_shuffle`. The permutations are one Fisher-Yates run over all blocks of the batch
at once (a step per voxel of the largest block, not a loop over blocks); each voxel then reads what its last covering
block assigns (a scatter 'amax' of the drawing order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dira.data.batch_random import TensorParams, integers

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ShuffleParams(TensorParams):
    """Blocks in drawing order (``starts``, ``sizes``) and their permutations, in a layout made for speed.

    Layout rows: the blocks by volume (largest first), then shape, then drawing order (``order[row]`` is the row's
    drawing index, sample-major); runs of one shape are ``groups`` (first row, rows, sz, sy, sx), and the rows with
    more than i voxels are a prefix. ``source`` is column-major: column i, from ``columns[i]``, holds for each such
    row the raster index (within the block) of the original voxel that the block's voxel i receives.
    """

    starts: torch.Tensor  # (n, blocks, 3) int64 corners (z, y, x)
    sizes: torch.Tensor  # (n, blocks, 3) int64 sides >= 1
    order: torch.Tensor  # (n * blocks,) int64
    source: torch.Tensor  # (sum of volumes,) int16 (int32 for blocks of more than 2^15 voxels)
    columns: torch.Tensor  # (largest volume,) int64
    groups: tuple[tuple[int, int, int, int, int], ...]


def column_starts(volumes: torch.Tensor) -> torch.Tensor:
    """Start of each column of the layout (``volumes`` descending): column i holds the rows with more than i voxels."""
    heights = torch.searchsorted(-volumes, -torch.arange(1, int(volumes.max()) + 1, device=volumes.device), right=True)
    return heights.cumsum(0) - heights


def shuffle_layout(sizes: torch.Tensor) -> tuple[torch.Tensor, tuple[tuple[int, int, int, int, int], ...]]:
    """(order, groups) of :class:`ShuffleParams` for (n, blocks, 3) sides."""
    flat = sizes.reshape(-1, 3).cpu()
    if int(flat.max()) >= 1 << 13 or int(flat.prod(1).max()) >= 1 << 24:
        raise ValueError("shuffle blocks need sides < 8192 and volumes < 2^24")
    shape_id = (flat[:, 0] << 26) + (flat[:, 1] << 13) + flat[:, 2]
    order = torch.argsort((((1 << 24) - flat.prod(1)) << 39) + shape_id, stable=True)
    ids, counts = torch.unique_consecutive(shape_id[order], return_counts=True)
    starts = (counts.cumsum(0) - counts).tolist()
    return order, tuple((row, count, sid >> 26, (sid >> 13) & 0x1FFF, sid & 0x1FFF)
                        for row, count, sid in zip(starts, counts.tolist(), ids.tolist(), strict=True))


def block_permutations(generator: torch.Generator, volumes: torch.Tensor) -> torch.Tensor:
    """Uniform permutations of range(v) for the (descending) ``volumes``, column-major as ShuffleParams.source.

    Fisher-Yates "inside-out" for all blocks at once: step i sets voxel i of every block longer than i to the value
    of its voxel j, uniform in 0 .. i, and voxel j to i (for j = i the second write wins)."""
    starts = column_starts(volumes)
    heights, first = torch.diff(starts, append=volumes.sum().view(1)).tolist(), starts.tolist()
    perm = torch.empty(int(volumes.sum()), dtype=torch.int16 if len(first) <= 1 << 15 else torch.int32)
    perm[: heights[0]] = 0
    rows = torch.arange(heights[0])
    for i, count in enumerate(heights[1:], start=1):  # a draw per step: no buffer of all words to page in
        there = starts.gather(0, torch.empty(count, dtype=torch.int64).random_(0, i + 1, generator=generator))
        there += rows[:count]
        perm[first[i]:first[i] + count] = perm.gather(0, there)
        perm.index_fill_(0, there, i)
    return perm


def draw_shuffle(generator: torch.Generator, count: int, shape: Shape, *, blocks: int,
                 block_divisor: int) -> ShuffleParams:
    """``blocks`` blocks per cube, sides 1 .. dim // block_divisor, corners inside, each with its permutation."""
    dims = torch.tensor(shape)
    sizes = integers(generator, 1, (dims // block_divisor).clamp_(min=1).expand(count, blocks, 3))
    starts = integers(generator, 0, dims - sizes)
    order, groups = shuffle_layout(sizes)
    volumes = sizes.view(-1, 3)[order].prod(1)
    return ShuffleParams(starts, sizes, order, block_permutations(generator, volumes), column_starts(volumes), groups)


def render_shuffle(cubes: torch.Tensor, params: ShuffleParams) -> torch.Tensor:
    """Every voxel covered by a block takes the original voxel that its last covering block's permutation assigns."""
    _, z, y, x = cubes.shape
    device, flat = cubes.device, cubes.reshape(-1)
    starts = params.starts.reshape(-1, 3).index_select(0, params.order)
    sample = torch.div(params.order, params.sizes.shape[1], rounding_mode="floor")
    corner = sample * (z * y * x) + (starts[:, 0] * y + starts[:, 1]) * x + starts[:, 2]
    key = (params.order << 32).add_(corner)  # drawing index above (the latest wins), the source voxel below
    columns = params.columns.int()
    top = [max(group[axis] for group in params.groups) for axis in (2, 3, 4)]
    raster = ((torch.arange(top[0], device=device) * y).view(-1, 1, 1) + torch.arange(top[1], device=device).view(-1, 1)
              ) * x + torch.arange(top[2], device=device)
    winner = torch.arange(-(1 << 32), flat.numel() - (1 << 32), device=device)  # uncovered: below all, reads itself
    for row, count, sz, sy, sx in params.groups:
        offsets = raster[:sz, :sy, :sx].reshape(-1)
        rows = torch.arange(row, row + count, device=device, dtype=torch.int32)
        source = params.source.index_select(0, (columns[: offsets.numel()] + rows[:, None]).view(-1))
        value = offsets.index_select(0, source.int()).view(count, -1).add_(key[row:row + count, None])
        winner.scatter_reduce_(0, (corner[row:row + count, None] + offsets).view(-1), value.view(-1), "amax")
    return flat.index_select(0, winner.bitwise_and_(0xFFFFFFFF)).view_as(cubes)

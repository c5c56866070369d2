"""Models Genesis / TransVW 3D transforms on float32 (z, y, x) cubes in [0, 1].

Each transform is a pure function of the cube, an explicit ``np.random.Generator`` and required keyword
parameters (the defaults live in the config schema), so a sample's view is a function of its seed. The
composers return ``(distorted, target, names)``; ``names`` lists what was applied, for statistics.

Reference behaviour mirrored here (MrGiovanni/ModelsGenesis ``pytorch/utils.py``, fhaghighi/TransVW
``pytorch/data_loader.py``), with the points where this code had to choose:

- Flip: up to ``max_flips`` rounds, each entered with ``prob``; a round flips one axis picked uniformly from
  the reference's three leading axes of its channel-first ``(1, x, y, z)`` sample. Axis 0 there is the
  channel, so one pick in three is a no-op and depth (z) is never flipped; here the picks are {none, y, x}.
  Input and target are flipped together (Models Genesis flips before distorting), so the target is the
  flipped original.
- Local shuffle: every block reads from the *original* cube and writes into the output, a later block
  overwriting an earlier one where they overlap (the reference's semantics). Vectorised: all block
  geometries are drawn at once, each block is permuted by an argsort of random keys, and every voxel takes
  the value from its last covering block. Because blocks overlap, the global histogram is only kept exactly
  when they do not; :func:`shuffle_blocks` takes explicit blocks for that case.
- Non-linear intensity: the cubic Bezier through (0, 0), two control points drawn in [0, 1]^2 and (1, 1) is
  sampled at ``curve_points`` parameter values (both coordinates are then non-decreasing in t, whatever the
  control points) and applied with ``np.interp``. The reversed curve pairs x(t) with y(1 - t), which is
  what the reference's "sort x only" does: a decreasing map from 0 -> 1 to 1 -> 0.
- Painting: block sides use the reference's integer divisions (dim // 6 .. dim // 3, dim - [3 dim // 7,
  4 dim // 7]) and a 3-voxel margin; the loops continue with ``continue_prob`` (0.95) as there.
- Elastic deformation: Simard-style, one U[-1, 1] displacement field per deformed axis, smoothed by a
  Gaussian of ``sigma`` (zero padding) and scaled by ``alpha``; the cube is resampled with linear
  interpolation and reflected borders. TransVW's ``utils/purturbation.py`` is not in its public snapshot;
  the same author's SemanticGenesis ``pytorch/utils/purturbation.py`` (same name, same import) displaces
  only the two in-plane axes (``axes=(1, 2)`` here), never depth, with alpha 991 and sigma 8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

_MG_FLIP_PICKS = (None, 2, 1)  # the reference's (channel, x, y) picks in this (z, y, x) layout
TRANSVW_CHOICES = ("local-shuffle", "non-linear", "in-paint", "out-paint")


def _check_cube(cube: np.ndarray) -> None:
    if cube.ndim != 3:
        raise ValueError(f"expected a (z, y, x) cube, got shape {cube.shape}")


def draw_flips(rng: np.random.Generator, *, prob: float, max_flips: int) -> list[int | None]:
    """Draw the flip rounds: each entered with ``prob``, picking y, x or (as the reference) nothing."""
    axes: list[int | None] = []
    for _ in range(max_flips):
        if rng.random() >= prob:
            break
        axes.append(_MG_FLIP_PICKS[int(rng.integers(len(_MG_FLIP_PICKS)))])
    return axes


def apply_flips(cube: np.ndarray, axes: Sequence[int | None]) -> np.ndarray:
    """Flip ``cube`` along each drawn axis in turn (``None`` is the reference's no-op channel pick)."""
    out = cube
    for axis in axes:
        if axis is not None:
            out = np.flip(out, axis=axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def flip(cube: np.ndarray, rng: np.random.Generator, *, prob: float, max_flips: int) -> np.ndarray:
    """Flip in-plane axes in up to ``max_flips`` rounds entered with ``prob`` each (see module notes)."""
    _check_cube(cube)
    return apply_flips(cube, draw_flips(rng, prob=prob, max_flips=max_flips))


def shuffle_blocks(cube: np.ndarray, rng: np.random.Generator, *, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Shuffle the voxels of each (start, size) block, read from ``cube``; later blocks win on overlaps."""
    _check_cube(cube)
    starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 3)
    shape = np.array(cube.shape)
    if len(starts) != len(sizes) or (sizes < 1).any() or (starts < 0).any() or (starts + sizes > shape).any():
        raise ValueError("blocks must have sides >= 1 and lie inside the cube")
    source = np.ascontiguousarray(cube, dtype=np.float32).ravel()
    if len(sizes) == 0:
        return source.reshape(cube.shape).copy()
    largest = tuple(int(s) for s in sizes.max(axis=0))
    _, ny, nx = cube.shape
    local = np.indices(largest).reshape(3, -1)  # every offset of the largest block, raster order
    local_offset = ((local[0] * ny + local[1]) * nx + local[2]).astype(np.int32)
    # validity of each padded offset for each block size, looked up per block instead of compared per block
    size_table = np.indices(largest).reshape(3, -1) + 1
    valid_by_size = (local[None] < size_table.T[:, :, None]).all(axis=1)
    valid = valid_by_size[np.ravel_multi_index(tuple((sizes - 1).T), largest)]
    base = ((starts[:, 0] * ny + starts[:, 1]) * nx + starts[:, 2]).astype(np.int32)
    flat = base[:, None] + local_offset[None, :]
    keys = rng.random(valid.shape)  # float64: ties, which would bias the order slightly, are ~1e-12 per block
    keys[~valid] = 2.0  # padding sorts last, so each row's first `volume` entries are a random order of its voxels
    permuted = np.take_along_axis(flat, np.argsort(keys, axis=1), axis=1)
    prefix = np.arange(valid.shape[1]) < sizes.prod(axis=1)[:, None]
    src, dest = permuted[prefix], flat[valid]  # both grouped by block in drawing order
    writer = np.full(source.size, -1, dtype=np.int32)
    np.maximum.at(writer, dest, np.arange(dest.size, dtype=np.int32))  # the last block covering each voxel
    out = source.copy()
    covered = writer >= 0
    out[covered] = source[src[writer[covered]]]
    return out.reshape(cube.shape)


def local_shuffle(cube: np.ndarray, rng: np.random.Generator, *, blocks: int, block_divisor: int) -> np.ndarray:
    """Shuffle voxels inside ``blocks`` random blocks of sides 1..dim // ``block_divisor`` per axis."""
    _check_cube(cube)
    shape = np.array(cube.shape)
    largest = np.maximum(shape // block_divisor, 1)
    sizes = rng.integers(1, largest + 1, size=(blocks, 3))
    starts = rng.integers(0, shape - sizes + 1)
    return shuffle_blocks(cube, rng, starts=starts, sizes=sizes)


def bezier_lookup(rng: np.random.Generator, *, reverse_prob: float, curve_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw a monotone intensity curve as (x, y) samples for ``np.interp`` (see module notes)."""
    (ax, ay), (bx, by) = rng.random((2, 2))
    reverse = rng.random() < reverse_prob
    t = np.linspace(0.0, 1.0, curve_points)
    # Bernstein weights of P1, P2 and P3 = (1, 1); P0 = (0, 0) contributes nothing
    w1, w2, w3 = 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    xs = w1 * ax + w2 * bx + w3
    ys = w1 * ay + w2 * by + w3
    xs = np.maximum.accumulate(xs)  # already non-decreasing; this only removes rounding wiggles for np.interp
    return xs, (ys[::-1] if reverse else ys)


def nonlinear_intensity(
    cube: np.ndarray, rng: np.random.Generator, *, reverse_prob: float, curve_points: int
) -> np.ndarray:
    """Map intensities through a random monotone Bezier curve, reversed with ``reverse_prob``."""
    _check_cube(cube)
    xs, ys = bezier_lookup(rng, reverse_prob=reverse_prob, curve_points=curve_points)
    return np.clip(np.interp(cube, xs, ys), 0.0, 1.0).astype(np.float32)


def _sides(low: Sequence[int], high: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    return np.array([int(rng.integers(lo, hi + 1)) for lo, hi in zip(low, high, strict=True)])


def _corner(shape: Sequence[int], sides: np.ndarray, margin: int, rng: np.random.Generator) -> np.ndarray:
    # the reference's randint(margin, dim - side - margin), clamped so that small cubes still get a valid range
    corner = []
    for d, s in zip(shape, sides, strict=True):
        low = min(margin, d - s)
        corner.append(int(rng.integers(low, max(low, d - s - margin) + 1)))
    return np.array(corner)


def inpaint_boxes(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    max_blocks: int,
    continue_prob: float,
    min_side_divisor: int,
    max_side_divisor: int,
    margin: int,
) -> list[tuple[slice, slice, slice]]:
    """Draw the in-painting blocks: up to ``max_blocks``, each drawn while U[0, 1) < ``continue_prob``."""
    low = [max(1, d // min_side_divisor) for d in shape]
    high = [max(lo, d // max_side_divisor) for lo, d in zip(low, shape, strict=True)]
    return _draw_boxes(shape, low, high, rng, count=max_blocks, continue_prob=continue_prob, first_free=False,
                       margin=margin)


def inpaint(
    cube: np.ndarray,
    rng: np.random.Generator,
    *,
    max_blocks: int,
    continue_prob: float,
    min_side_divisor: int,
    max_side_divisor: int,
    margin: int,
) -> np.ndarray:
    """Fill up to ``max_blocks`` blocks (sides dim // min_side_divisor .. dim // max_side_divisor) with U[0, 1)."""
    _check_cube(cube)
    out = np.array(cube, dtype=np.float32, copy=True)
    boxes = inpaint_boxes(
        cube.shape, rng, max_blocks=max_blocks, continue_prob=continue_prob,
        min_side_divisor=min_side_divisor, max_side_divisor=max_side_divisor, margin=margin,
    )
    for box in boxes:
        out[box] = rng.random(tuple(s.stop - s.start for s in box), dtype=np.float32)
    return out


def outpaint_boxes(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    max_windows: int,
    continue_prob: float,
    shrink_sevenths: tuple[int, int],
    margin: int,
) -> list[tuple[slice, slice, slice]]:
    """Draw the kept windows: one always, then up to ``max_windows - 1`` more while U[0, 1) < ``continue_prob``."""
    lo_n, hi_n = shrink_sevenths
    low = [max(1, d - hi_n * d // 7) for d in shape]  # side = dim - randint(lo_n dim // 7, hi_n dim // 7)
    high = [max(lo, d - lo_n * d // 7) for lo, d in zip(low, shape, strict=True)]
    return _draw_boxes(shape, low, high, rng, count=max_windows, continue_prob=continue_prob, first_free=True,
                       margin=margin)


def _draw_boxes(shape: Sequence[int], low: list[int], high: list[int], rng: np.random.Generator, *, count: int,
                continue_prob: float, first_free: bool, margin: int) -> list[tuple[slice, slice, slice]]:
    """Up to ``count`` boxes of sides in [low, high], each drawn while U[0, 1) < ``continue_prob`` (the first
    without that draw when ``first_free``, as out-painting always keeps one window)."""
    boxes = []
    for i in range(count):
        if not (first_free and i == 0) and rng.random() >= continue_prob:
            break
        sides = _sides(low, high, rng)
        corner = _corner(shape, sides, margin, rng)
        boxes.append(tuple(slice(int(c), int(c + s)) for c, s in zip(corner, sides, strict=True)))
    return boxes


def outpaint(
    cube: np.ndarray,
    rng: np.random.Generator,
    *,
    max_windows: int,
    continue_prob: float,
    shrink_sevenths: tuple[int, int],
    margin: int,
) -> np.ndarray:
    """Replace the cube by U[0, 1) noise except up to ``max_windows`` large windows that keep the original."""
    _check_cube(cube)
    noise = rng.random(cube.shape, dtype=np.float32)
    boxes = outpaint_boxes(
        cube.shape, rng, max_windows=max_windows, continue_prob=continue_prob,
        shrink_sevenths=shrink_sevenths, margin=margin,
    )
    for box in boxes:
        noise[box] = cube[box]
    return noise


def elastic_deform(
    cube: np.ndarray, rng: np.random.Generator, *, alpha: float, sigma: float, axes: Sequence[int]
) -> np.ndarray:
    """Warp the cube along ``axes`` by ``alpha`` x a ``sigma``-smoothed U[-1, 1] field per axis (Simard)."""
    _check_cube(cube)
    if not set(axes) <= {0, 1, 2}:
        raise ValueError(f"axes must be among 0, 1, 2 (z, y, x), got {axes}")
    grid = np.indices(cube.shape, dtype=np.float64)
    for axis in sorted(set(axes)):
        field = gaussian_filter(rng.uniform(-1.0, 1.0, cube.shape), sigma, mode="constant", cval=0.0)
        grid[axis] += alpha * field
    warped = map_coordinates(np.asarray(cube, dtype=np.float32), grid, order=1, mode="reflect")
    return np.clip(warped, 0.0, 1.0).astype(np.float32)


def _paint(cube: np.ndarray, rng: np.random.Generator, *, inpaint_prob: float, inpainting: Mapping[str, Any],
           outpainting: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    if rng.random() < inpaint_prob:
        return inpaint(cube, rng, **inpainting), "in-paint"
    return outpaint(cube, rng, **outpainting), "out-paint"


def models_genesis_view(
    cube: np.ndarray,
    rng: np.random.Generator,
    *,
    flip_prob: float,
    max_flips: int,
    shuffle_prob: float,
    nonlinear_prob: float,
    paint_prob: float,
    inpaint_prob: float,
    shuffling: Mapping[str, Any],
    nonlinearity: Mapping[str, Any],
    inpainting: Mapping[str, Any],
    outpainting: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Models Genesis' chain: flip (input and target), shuffle, Bezier, then in- or out-painting.

    ``shuffling`` / ``nonlinearity`` / ``inpainting`` / ``outpainting`` are the keyword arguments of
    :func:`local_shuffle` / :func:`nonlinear_intensity` / :func:`inpaint` / :func:`outpaint`. "flip" is
    named when at least one flip round ran, a no-op pick included.
    """
    _check_cube(cube)
    names: list[str] = []
    axes = draw_flips(rng, prob=flip_prob, max_flips=max_flips)
    target = apply_flips(cube, axes)
    if axes:
        names.append("flip")
    x = target.copy()  # never hand back one array as both input and target
    if rng.random() < shuffle_prob:
        x = local_shuffle(x, rng, **shuffling)
        names.append("local-shuffle")
    if rng.random() < nonlinear_prob:
        x = nonlinear_intensity(x, rng, **nonlinearity)
        names.append("non-linear")
    if rng.random() < paint_prob:
        x, name = _paint(x, rng, inpaint_prob=inpaint_prob, inpainting=inpainting, outpainting=outpainting)
        names.append(name)
    return x, target, tuple(names)


def transvw_view(
    cube: np.ndarray,
    rng: np.random.Generator,
    *,
    elastic_prob: float,
    elastic: Mapping[str, Any],
    choice_probs: Sequence[float],
    shuffling: Mapping[str, Any],
    nonlinearity: Mapping[str, Any],
    inpainting: Mapping[str, Any],
    outpainting: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """TransVW's input: elastic deformation, then exactly one of shuffle / Bezier / in- / out-painting.

    ``choice_probs`` are the chances of (local-shuffle, non-linear, in-paint, out-paint) and must sum to 1.
    The target is the original cube, neither deformed nor distorted, as in the reference. The distortions take
    their own mappings because TransVW's versions may differ from Models Genesis': the same author's
    SemanticGenesis ``purturbation.py`` shuffles 5 blocks and paints one block / keeps one window, ungated.
    """
    _check_cube(cube)
    probs = np.asarray(choice_probs, dtype=np.float64)
    if probs.shape != (4,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"choice_probs must be 4 non-negative shares summing to 1, got {choice_probs}")
    target = np.array(cube, dtype=np.float32, copy=True)
    names: list[str] = []
    x = target
    if rng.random() < elastic_prob:
        x = elastic_deform(x, rng, **elastic)
        names.append("elastic")
    pick = int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"))
    choice = TRANSVW_CHOICES[min(pick, 3)]
    if choice == "local-shuffle":
        x = local_shuffle(x, rng, **shuffling)
    elif choice == "non-linear":
        x = nonlinear_intensity(x, rng, **nonlinearity)
    elif choice == "in-paint":
        x = inpaint(x, rng, **inpainting)
    else:
        x = outpaint(x, rng, **outpainting)
    names.append(choice)
    return x, target, tuple(names)

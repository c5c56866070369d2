"""The 3D fine-tuning augmentation (appendix C.2: "random flipping, transposing, rotating, and adding Gaussian
noise"), as pure functions of the arrays, an explicit ``np.random.Generator`` and the parameters.

The appendix names the four operations but gives no parameters, so these are this pipeline's
(``finetune3d.augmentation``, docs/decisions.md '3D fine-tuning'):

- flip: each of the three axes (z, y, x) is reversed with ``flip_prob``, independently;
- transpose: y and x are swapped with ``transpose_prob``, only where the crop is square in-plane (y == x);
  a (z, x, y) crop would not fit the batch, and z is never swapped, since CT and MR voxels are anisotropic;
- rotate: with ``rotate_prob`` a quarter, half or three-quarter turn in the (y, x) plane, drawn uniformly;
  a crop that is not square in-plane only takes the half turn, which keeps its shape;
- noise: with ``noise_prob`` N(0, ``noise_std``) is added to every voxel of the image (the network's
  values, [0, 1] for CT, z-scores for MR), never to the mask.

Image and mask take the same geometric draw, so a voxel keeps its label. The image may carry a leading
channel axis (C, z, y, x); the geometry acts on the last three axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPATIAL = (-3, -2, -1)  # z, y, x: the last three axes of an image or a mask


@dataclass(frozen=True)
class Augmentation3D:
    """Probabilities and noise level of the training augmentation (``finetune3d.augmentation``)."""

    flip_prob: float
    transpose_prob: float
    rotate_prob: float
    noise_prob: float
    noise_std: float

    def __post_init__(self) -> None:
        for name in ("flip_prob", "transpose_prob", "rotate_prob", "noise_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")


@dataclass(frozen=True)
class GeometricDraw:
    """One sample's geometric augmentation: which axes to reverse, whether to swap y and x, the quarter turns."""

    flips: tuple[bool, bool, bool]  # z, y, x
    transpose: bool
    quarter_turns: int  # 0-3, counter-clockwise in the (y, x) plane


def draw_geometry(rng: np.random.Generator, shape: tuple[int, ...], params: Augmentation3D) -> GeometricDraw:
    """Draw the geometric part for a crop whose last three axes are ``shape[-3:]``. The draws are the same
    whatever the shape, so the stream a sample consumes does not depend on it."""
    square = shape[-1] == shape[-2]
    flips = tuple(bool(f) for f in rng.random(3) < params.flip_prob)
    transpose = bool(rng.random() < params.transpose_prob) and square
    rotate = bool(rng.random() < params.rotate_prob)
    turns = int(rng.integers(1, 4))
    turns = turns if square else 2
    return GeometricDraw(flips, transpose, turns if rotate else 0)  # type: ignore[arg-type]


def apply_geometry(array: np.ndarray, draw: GeometricDraw) -> np.ndarray:
    """``array`` (..., z, y, x) flipped, transposed and rotated as ``draw`` says (a contiguous copy)."""
    if array.ndim < 3:
        raise ValueError(f"expected an array with (z, y, x) as its last axes, got shape {array.shape}")
    flipped = [axis for axis, flip in zip(SPATIAL, draw.flips, strict=True) if flip]
    out = np.flip(array, axis=flipped) if flipped else array
    if draw.transpose:
        out = np.swapaxes(out, -2, -1)
    if draw.quarter_turns:
        out = np.rot90(out, k=draw.quarter_turns, axes=(-2, -1))
    return np.ascontiguousarray(out)


def add_noise(image: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """``image`` + N(0, std) per voxel, in float32."""
    return (image + rng.normal(0.0, std, image.shape)).astype(np.float32)


def augment(image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator,
            params: Augmentation3D) -> tuple[np.ndarray, np.ndarray | None]:
    """One training draw: the same geometry for ``image`` (..., z, y, x) and ``mask`` (z, y, x), then noise on
    the image. The inputs are left unchanged."""
    if mask is not None and mask.shape != image.shape[-3:]:
        raise ValueError(f"mask shape {mask.shape} differs from the image's (z, y, x) {image.shape[-3:]}")
    draw = draw_geometry(rng, image.shape, params)
    image = apply_geometry(image, draw).astype(np.float32, copy=False)
    mask = apply_geometry(mask, draw) if mask is not None else None
    if rng.random() < params.noise_prob and params.noise_std > 0:
        image = add_noise(image, rng, params.noise_std)
    return image, mask

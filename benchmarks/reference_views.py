"""The reference implementations' per-sample data paths, re-implemented as baselines for the benchmarks.

Not the package's code path: these mirror what the public DiRA (2D, fhaghighi/DiRA) and TransVW (3D,
fhaghighi/TransVW) loaders do per sample (facts in ``shared/reference/anchors-ssl.md``), with their PIL,
torchvision and numpy calls and their Python ``random`` loops, so that ``benchmarks/views.py`` and the step
benchmarks can time the package beside them in one run.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import comb


# ---- the reference's per-image data path -------------------------------------------------------------
class PILGaussianBlur:
    """The reference's blur: PIL's GaussianBlur with a radius σ ~ U[0.1, 2]."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def reference_distortion(image: Image.Image, rows: int, cols: int) -> Image.Image:
    """The reference's restoration distortion on the uint8 H×W×3 array, with its per-image Python loops."""
    pixels = np.array(image)
    r = random.random()
    if r <= 0.30:  # cut-out: up to 10 zeroed blocks, 10-70 px, 3 px off the border, 10 % early stop
        for _ in range(10):
            bx, by = random.randint(10, 70), random.randint(10, 70)
            x, y = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
            pixels[x:x + bx, y:y + by, :] = 0
            if random.random() < 0.1:
                break
    elif r <= 0.35:  # out-painting: blank except up to 10 windows of side 224 - U[50, 70]
        original = pixels.copy()
        pixels[:] = 0
        for _ in range(10):
            bx, by = rows - random.randint(50, 70), cols - random.randint(50, 70)
            x, y = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
            pixels[x:x + bx, y:y + by, :] = original[x:x + bx, y:y + by, :]
            if random.random() < 0.1:
                break
    elif r <= 0.65:  # local shuffle: 10 pairs of 10-15 px blocks swapped
        original = pixels.copy()
        for _ in range(10):
            while True:
                bx, by = random.randint(10, 15), random.randint(10, 15)
                x1, y1 = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
                x2, y2 = random.randint(3, rows - bx - 3), random.randint(3, cols - by - 3)
                # The reference's test: `<` with `or` on the y terms accepts almost every pair.
                if x1 > x2 + bx or x2 > x1 + bx or y1 < y2 + by or y2 < y1 + by:
                    break
            pixels[x1:x1 + bx, y1:y1 + by, :] = original[x2:x2 + bx, y2:y2 + by, :]
            pixels[x2:x2 + bx, y2:y2 + by, :] = original[x1:x1 + bx, y1:y1 + by, :]
    return Image.fromarray(pixels)


class ReferenceTransform:
    """The reference's ``Transform`` in 'dira' mode: two crops, jitter/blur/flip, distortion, ToTensor, target."""

    def __init__(self, size: int):
        self.size = size
        self.crop = T.RandomResizedCrop(size, scale=(0.2, 1.0))
        self.augment = T.Compose([
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomApply([PILGaussianBlur()], p=0.5),
            T.RandomHorizontalFlip(),
        ])
        self.to_tensor = T.ToTensor()

    def __call__(self, image: Image.Image) -> list[Any]:
        crop1, crop2 = self.crop(image), self.crop(image)
        view1 = self.to_tensor(reference_distortion(self.augment(crop1), self.size, self.size))
        view2 = self.to_tensor(reference_distortion(self.augment(crop2), self.size, self.size))
        target = np.expand_dims(np.array(crop1.convert("L")) / 255.0, axis=0).astype("float32")
        return [view1, view2, target]


# ---- the reference's per-sample data path (numpy float64 on (1, x, y, z) cubes, Python `random`) -----
def reference_elastic(cube: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """Simard deformation of the in-plane (x, y) axes: float64 fields and coordinates, linear interpolation."""
    coords = np.indices(cube.shape, dtype=np.float64)
    for axis in (0, 1):
        coords[axis] += alpha * gaussian_filter(np.random.rand(*cube.shape) * 2 - 1, sigma, mode="constant", cval=0)
    return map_coordinates(cube, coords, order=1, mode="reflect")


def reference_local_shuffle(x: np.ndarray, blocks: int, block_divisor: int) -> np.ndarray:
    """One Python iteration per block: random sides up to dim // divisor, read from the original, shuffled."""
    original, out = x.copy(), x.copy()
    _, rows, cols, deps = x.shape
    for _ in range(blocks):
        bx, by = random.randint(1, rows // block_divisor), random.randint(1, cols // block_divisor)
        bz = random.randint(1, deps // block_divisor)
        px, py, pz = random.randint(0, rows - bx), random.randint(0, cols - by), random.randint(0, deps - bz)
        window = original[0, px:px + bx, py:py + by, pz:pz + bz].flatten()
        np.random.shuffle(window)
        out[0, px:px + bx, py:py + by, pz:pz + bz] = window.reshape((bx, by, bz))
    return out


def reference_nonlinear(x: np.ndarray, reverse_prob: float, curve_points: int) -> np.ndarray:
    """Bezier through (0, 0), two random points, (1, 1) from Bernstein sums; sorted, then np.interp."""
    points = [[0.0, 0.0], [random.random(), random.random()], [random.random(), random.random()], [1.0, 1.0]]
    t = np.linspace(0.0, 1.0, curve_points)
    bernstein = np.array([comb(3, i) * t ** (3 - i) * (1 - t) ** i for i in range(4)])
    xs, ys = np.dot([p[0] for p in points], bernstein), np.dot([p[1] for p in points], bernstein)
    if random.random() < reverse_prob:
        xs = np.sort(xs)  # x only: the decreasing curve
    else:
        xs, ys = np.sort(xs), np.sort(ys)
    return np.interp(x, xs, ys)


def reference_inpaint(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    x = x.copy()
    _, rows, cols, deps = x.shape
    count = p["max_blocks"]
    while count > 0 and random.random() < p["continue_prob"]:
        sides = [random.randint(d // p["min_side_divisor"], d // p["max_side_divisor"]) for d in (rows, cols, deps)]
        at = [random.randint(p["margin"], d - s - p["margin"]) for d, s in zip((rows, cols, deps), sides, strict=True)]
        x[:, at[0]:at[0] + sides[0], at[1]:at[1] + sides[1], at[2]:at[2] + sides[2]] = np.random.rand(*sides)
        count -= 1
    return x


def reference_outpaint(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    original = x.copy()
    out = np.random.rand(*x.shape)
    _, rows, cols, deps = x.shape
    lo, hi = p["shrink_sevenths"]

    def keep() -> None:
        sides = [d - random.randint(lo * d // 7, hi * d // 7) for d in (rows, cols, deps)]
        at = [random.randint(p["margin"], d - s - p["margin"]) for d, s in zip((rows, cols, deps), sides, strict=True)]
        box = (slice(None), *(slice(a, a + s) for a, s in zip(at, sides, strict=True)))
        out[box] = original[box]

    keep()
    count = p["max_windows"] - 1
    while count > 0 and random.random() < p["continue_prob"]:
        keep()
        count -= 1
    return out


class ReferenceSamples:
    """The reference's data loader: all cubes in RAM as float64 (x, y, z), one sample per ``__getitem__``."""

    def __init__(self, cubes_xyz: np.ndarray, labels: np.ndarray, views: dict[str, Any], choice: int | None = None):
        self.cubes, self.labels, self.views, self.choice = cubes_xyz, labels, views, choice

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = self.views
        y = self.cubes[index][None]  # (1, x, y, z)
        x = reference_elastic(y[0], v["elastic"]["alpha"], v["elastic"]["sigma"])[None]
        r, cuts = random.random(), np.cumsum(v["choice_probs"])
        choice = self.choice if self.choice is not None else int(np.searchsorted(cuts, r, side="right"))
        if choice == 0:
            x = reference_local_shuffle(x, **v["shuffling"])
        elif choice == 1:
            x = reference_nonlinear(x, **v["nonlinearity"])
        elif choice == 2:
            x = reference_inpaint(x, v["inpainting"])
        else:
            x = reference_outpaint(x, v["outpainting"])
        return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)),
                torch.tensor(self.labels[index]))

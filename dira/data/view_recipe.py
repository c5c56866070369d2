"""A base method's two-view augmentation recipe, and the random draws of one view as plain values.

Each discriminative method brings its own recipe (``pretrain.<method>.views``): MoCo-v2 as DiRA's code
has it, SimSiam's aug+, Barlow Twins' asymmetric views. Probabilities are pairs ``(view 1, view 2)`` so
that symmetric and asymmetric recipes take one code path. Saturation, hue and grayscale of the original
recipes do nothing on one-channel X-rays and so are not part of :class:`ViewRecipe`.

Drawing is separate from rendering: :func:`draw_view_params` says what a view gets (crop, flip, jitter,
blur, solarisation) without touching pixels, which keeps the recipe's statistics testable on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

Pair = tuple[float, float]


@dataclass(frozen=True)
class ViewRecipe:
    """The parts of a method's recipe that act on grey images; built from ``pretrain.<method>.views``."""

    crop_scale: Pair
    interpolation: str
    jitter_prob: Pair
    brightness: float
    contrast: float
    blur_prob: Pair
    blur_sigma: Pair
    solarize_prob: Pair
    flip_prob: Pair

    @classmethod
    def from_config(cls, views: dict[str, Any]) -> ViewRecipe:
        """The validated config section; its no-op keys on grey images (saturation, hue, grayscale) are dropped."""
        values = {f.name: views[f.name] for f in fields(cls)}
        return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


@dataclass(frozen=True)
class ViewParams:
    """Everything random about one view: crop (top, left, h, w) in source pixels, then what is applied."""

    crop: tuple[int, int, int, int]
    flip: bool
    jitter: tuple[tuple[str, float], ...]  # (operation, factor) in the order applied; () = no jitter
    blur_sigma: float | None  # σ in pixels of a 224-px view; None = no blur
    solarize: bool


def sample_crop(rng: np.random.Generator, height: int, width: int, scale: Pair,
                ratio: Pair = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a RandomResizedCrop: a random area share and aspect ratio, else the centre."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def _jitter(rng: np.random.Generator, recipe: ViewRecipe) -> tuple[tuple[str, float], ...]:
    # ColorJitter draws a factor in [max(0, 1 - s), 1 + s] per operation and applies them in random order.
    factors = {"brightness": recipe.brightness, "contrast": recipe.contrast}
    names = [list(factors)[i] for i in rng.permutation(len(factors))]
    return tuple((name, float(rng.uniform(max(0.0, 1 - factors[name]), 1 + factors[name]))) for name in names)


def draw_view_params(rng: np.random.Generator, recipe: ViewRecipe, view_index: int, height: int,
                     width: int) -> ViewParams:
    """Draw view ``view_index`` (0 or 1) of a ``height`` x ``width`` image; the probabilities are that view's."""
    crop = sample_crop(rng, height, width, recipe.crop_scale)
    flip = bool(rng.random() < recipe.flip_prob[view_index])
    jitter = _jitter(rng, recipe) if rng.random() < recipe.jitter_prob[view_index] else ()
    blur = float(rng.uniform(*recipe.blur_sigma)) if rng.random() < recipe.blur_prob[view_index] else None
    solarize = bool(rng.random() < recipe.solarize_prob[view_index])
    return ViewParams(crop, flip, jitter, blur, solarize)

"""Label-efficiency subsets (paper Table 1): the first share of one fixed permutation of the training split.

Taking prefixes of a single permutation drawn from ``finetune.fraction_seed`` nests the subsets
(1 % ⊂ 25 % ⊂ 50 % ⊂ 100 %) and keeps them the same for every run seed, so a table's columns differ
only in how many labels were used, and its seeds only in the fine-tuning randomness.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from dira.errors import InputError


def training_subset(n_images: int, fraction: float, seed: int | None) -> np.ndarray:
    """Sorted indices of ceil(fraction · n) training images (at least one), nested across fractions.

    All labels (fraction 1) need no seed: a full-data run does not read ``finetune.fraction_seed``.
    """
    if not 0 < fraction <= 1:
        raise InputError(f"label fraction {fraction} is not in (0, 1]")
    if fraction == 1:
        return np.arange(n_images)
    # Rounding first keeps float noise (0.07 · 100 = 7.000000000000001) from adding an image.
    if seed is None:
        raise InputError(f"label fraction {fraction} needs finetune.fraction_seed")
    count = max(1, math.ceil(round(fraction * n_images, 9)))
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[:count])


def subset_digest(ids: Sequence[str]) -> str:
    """A short fingerprint of the chosen image ids: equal digests mean runs trained on the same subset."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def select_training(dataset: Dataset, ids: Sequence[str], fraction: float, seed: int | None,
                    source: str) -> tuple[Dataset, dict[str, Any]]:
    """The training split restricted to its label fraction, and what to record about the subset."""
    if len(dataset) == 0:
        raise InputError(f"{source}: no training images to draw a label fraction from")
    # At least one image: 1 % of Montgomery's ~110 training images is a single image in the paper's Table 1 too.
    indices = training_subset(len(dataset), fraction, seed)
    chosen = dataset if len(indices) == len(dataset) else Subset(dataset, indices.tolist())
    record = {"fraction": fraction, "fraction_seed": seed, "n_train": len(indices),
              "n_train_available": len(dataset), "train_subset_digest": subset_digest([ids[i] for i in indices])}
    return chosen, record

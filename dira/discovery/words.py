"""Building the visual-word classes: a reference patient, its nearest patients, one coordinate shared by all.

TransVW's ``pattern_generator_3D`` per class: an unused reference patient drawn at random; the training patients
ranked by the L2 distance of their features to the reference's (the reference first, at distance 0), and the
validation patients likewise; one random position on the reference that keeps Models Genesis' border and tissue
rules (the cubes' ``datasets.luna16.cubes`` settings) and lies at least ``min_distance`` voxels from every earlier
class's position; at most ``tries`` draws. A reference that gives no position within ``tries`` is left unused
(TransVW does not say what it does then); the next one is drawn, and running out of references is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dira.data.prepare.luna16 import fitted_border, tissue_share
from dira.discovery.frames import map_centre
from dira.errors import InputError


@dataclass(frozen=True)
class PlacementRule:
    """Where a class's crop may sit on its reference (config: datasets.luna16.cubes, discovery)."""

    crop_shape: tuple[int, int, int]  # z, y, x
    border: tuple[int, int, int]  # voxels kept from every face, scaled down where a scan is too small
    tissue_hu: float
    tissue_lookahead: int
    max_tissue_fraction: float
    min_distance: float  # voxels from earlier classes' centres
    tries: int
    mode: str  # discovery.coordinates

    @classmethod
    def of(cls, luna: Mapping[str, Any], discovery: Mapping[str, Any]) -> PlacementRule:
        cubes = luna["cubes"]
        return cls(tuple(luna["crop_shape"]), tuple(cubes["border"]), float(cubes["tissue_hu"]),
                   int(cubes["tissue_lookahead"]), float(cubes["max_tissue_fraction"]),
                   float(discovery["min_distance"]), int(discovery["tries"]), discovery["coordinates"])


@dataclass(frozen=True)
class Placed:
    """A class's position: the crop centre (z, y, x voxels) on its reference, in the oriented frame."""

    centre: tuple[float, float, float]
    reference_shape: tuple[int, int, int]
    tries: int  # draws it took

    def centre_in(self, shape: Sequence[int], mode: str) -> np.ndarray:
        return map_centre(np.asarray(self.centre), self.reference_shape, shape, mode)


def place(volume_hu: np.ndarray, rng: np.random.Generator, rule: PlacementRule,
          earlier: Sequence[Placed]) -> Placed | None:
    """A random crop position on ``volume_hu`` (the reference, oriented) obeying ``rule``; None after ``rule.tries``.

    The crop's window reaches ``tissue_lookahead - 1`` slices beyond it in z, as the Models Genesis cubes' does.
    """
    shape = volume_hu.shape
    crop = np.asarray(rule.crop_shape)
    extent = (rule.crop_shape[0] + rule.tissue_lookahead - 1, rule.crop_shape[1], rule.crop_shape[2])
    border = fitted_border(shape, extent, rule.border)
    if border is None:
        return None
    highest = np.asarray(shape) - np.asarray(extent) - border  # inclusive
    others = np.array([p.centre_in(shape, rule.mode) for p in earlier]).reshape(-1, 3)
    for attempt in range(1, rule.tries + 1):
        start = np.array([rng.integers(lo, hi + 1) for lo, hi in zip(border, highest, strict=True)])
        centre = start + (crop - 1) / 2
        if len(others) and np.linalg.norm(others - centre, axis=1).min() < rule.min_distance:
            continue
        window_hu = volume_hu[tuple(slice(a, a + n) for a, n in zip(start, extent, strict=True))]
        if tissue_share(window_hu, rule.tissue_hu, rule.tissue_lookahead) > rule.max_tissue_fraction:
            continue
        return Placed(tuple(float(c) for c in centre), tuple(int(n) for n in shape), attempt)
    return None


def nearest(features: np.ndarray, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``count`` rows of ``features`` nearest ``query`` (L2), nearest first, ties in row order;
    and their distances."""
    distances = np.linalg.norm(np.asarray(features, np.float64) - np.asarray(query, np.float64), axis=1)
    order = np.argsort(distances, kind="stable")[:count]
    return order, distances[order]


@dataclass(frozen=True)
class VisualWord:
    """One class: its reference, its position there, and the patients its crops are cut from (nearest first)."""

    label: int
    reference: str
    placed: Placed
    train: tuple[str, ...]
    train_distances: tuple[float, ...]
    val: tuple[str, ...]
    val_distances: tuple[float, ...]


@dataclass(frozen=True)
class Patients:
    """One split's patients and their features, in the same order."""

    ids: tuple[str, ...]
    features: np.ndarray  # (N, F)


def check_counts(*, classes: int, neighbours_train: int, neighbours_val: int, train: int, val: int) -> None:
    """InputError unless the splits hold the classes' references and neighbours (checked before any training)."""
    if classes > train:
        raise InputError(f"discovery.classes = {classes} needs as many reference patients; the training split "
                         f"has {train}")
    for what, wanted, have in (("neighbours_train", neighbours_train, train), ("neighbours_val", neighbours_val, val)):
        if wanted > have:
            raise InputError(f"discovery.{what} = {wanted}, but the split has {have} patients")


def plan_words(train: Patients, val: Patients, load_reference: Callable[[str], np.ndarray], *, classes: int,
               neighbours_train: int, neighbours_val: int, rule: PlacementRule,
               rng: np.random.Generator) -> tuple[list[VisualWord], list[str]]:
    """The ``classes`` visual words, and the references given up (no position within ``rule.tries``).

    ``load_reference(id)`` returns a training patient's oriented HU volume; only the references drawn are read.
    """
    check_counts(classes=classes, neighbours_train=neighbours_train, neighbours_val=neighbours_val,
                 train=len(train.ids), val=len(val.ids))
    words: list[VisualWord] = []
    given_up: list[str] = []
    for index in rng.permutation(len(train.ids)):
        if len(words) == classes:
            break
        reference = train.ids[index]
        placed = place(load_reference(reference), rng, rule, [w.placed for w in words])
        if placed is None:
            given_up.append(reference)
            continue
        query = train.features[index]
        near_train, d_train = nearest(train.features, query, neighbours_train)
        near_val, d_val = nearest(val.features, query, neighbours_val)
        words.append(VisualWord(len(words), reference, placed, tuple(train.ids[i] for i in near_train),
                                tuple(float(d) for d in d_train), tuple(val.ids[i] for i in near_val),
                                tuple(float(d) for d in d_val)))
    if len(words) < classes:
        raise InputError(f"discovery found {len(words)} of {classes} classes: {len(given_up)} reference patients "
                         f"gave no crop position within {rule.tries} tries (border, tissue share <= "
                         f"{rule.max_tissue_fraction}, >= {rule.min_distance} voxels from earlier classes); lower "
                         "discovery.classes or min_distance, or loosen datasets.luna16.cubes")
    return words, given_up

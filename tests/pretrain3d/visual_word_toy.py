"""Tiny visual-word caches for the TransVW tests: cubes whose class is a planted brightness pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dira.data.cache import AppendingCacheWriter, VoxelGrid

SHAPE = (8, 16, 16)  # (z, y, x): three 2x pools halve it exactly
GRID = VoxelGrid("zyx", (2.5, 0.7, 0.7), {"unit": "HU", "window": [-1000, 1000], "scaled_to": [0, 1]})
ATTRS = {"dataset": "toy_visual_words", "manifest": "{}", "provenance": "{}"}


def write_visual_words(folder: Path, sizes: dict[str, int], classes: int = 3, shape: tuple[int, ...] = SHAPE,
                       seed: int = 0) -> Path:
    """``train.h5`` / ``val.h5`` as ``dira discover`` writes them: uint8 cubes, ``labels`` = class index."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        labels = np.arange(n) % classes
        cubes = rng.random((n, *shape)) * 0.3
        for i, c in enumerate(labels):  # class c: a bright slab at a class-specific depth
            cubes[i, 2 * c % shape[0]] += 0.6
        with AppendingCacheWriter(folder / f"{split}.h5", shape, {**ATTRS, "split": split}, dtype="uint8",
                                  fields={"labels": ("int64", ())}, grid=GRID) as writer:
            writer.append(np.rint(cubes.clip(0, 1) * 255).astype(np.uint8), [f"vw{c:03d}/s{i}/r0" for i, c in
                                                                              enumerate(labels)], labels=labels)
    return folder

"""Device choice, thread count and seeding shared by every training command."""

from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """'auto' takes CUDA when visible; asking for 'cuda' without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is visible (use 'auto' or 'cpu')")
    return torch.device(name)


def configure_threads(threads: int) -> None:
    # Snakemake runs several jobs side by side; each must stay within the cores it reserved.
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(max(1, min(threads, 2)))
    except RuntimeError:  # already set in this process (tests call several commands)
        pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from several parts (base seed, epoch, sample index, ...)."""
    return int(np.random.SeedSequence([_as_int(p) for p in parts]).generate_state(2, np.uint32)
               .astype(np.uint64).dot(np.array([1 << 31, 1], dtype=np.uint64)))


def _as_int(part: int | str) -> int:
    if isinstance(part, int):
        return part
    return int.from_bytes(part.encode(), "little") % (1 << 63)

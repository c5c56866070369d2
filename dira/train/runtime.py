"""Device choice, thread count and seeding shared by every training command."""

from __future__ import annotations

import contextlib
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
    with contextlib.suppress(RuntimeError):  # already set in this process (tests run several commands)
        torch.set_num_interop_threads(max(1, min(threads, 2)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

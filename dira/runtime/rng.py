"""Seeding this process's global random generators (Python, NumPy, torch) for one run."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed every global generator a run draws from, so one seed reproduces the run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

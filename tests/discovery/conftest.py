"""Fixtures of the discovery tests: the planted-pattern LUNA16 root (discovery_data.py says how it is drawn)."""

from __future__ import annotations

import numpy as np
import pytest
from discovery_data import GROUPS, TRAIN_PER_GROUP, VAL_PER_GROUP, group_volume, write_root, write_splits

from dira.data.sources.luna16 import SERIES_PREFIX


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> dict:
    """The planted root, its splits.json and each scan's group: ``{"root", "splits", "group", "shape"}``."""
    base = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    volumes, group_of, train, val = {}, {}, [], []
    number = 0
    for group in range(GROUPS):
        for member in range(TRAIN_PER_GROUP + VAL_PER_GROUP):
            uid = f"{SERIES_PREFIX}{100 + number}"
            is_train = member < TRAIN_PER_GROUP
            subset = number % 5 if is_train else 5 + number % 2
            volumes[uid] = (subset, group_volume(group, 24 + 4 * (number % 3), rng), False)
            group_of[uid] = group
            (train if is_train else val).append(uid)
            number += 1
    root = write_root(base / "raw", volumes)
    return {"root": root, "splits": write_splits(base / "splits.json", train, val), "group": group_of,
            "shape": {uid: v[1].shape for uid, v in volumes.items()}, "train": train, "val": val}

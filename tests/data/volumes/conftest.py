"""A small synthetic LUNA16 root (flipped and unflipped scans, anisotropic voxels) for the volume tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from dira.data.synthetic.luna16 import write_luna16

LUNA_SPEC = SimpleNamespace(scans=6, image_size=48, seed=5)


@pytest.fixture(scope="session")
def luna_spec() -> SimpleNamespace:
    return LUNA_SPEC


@pytest.fixture(scope="session")
def luna_root(tmp_path_factory) -> Path:
    """Read-only: tests that damage the set use ``luna_copy``."""
    root = tmp_path_factory.mktemp("luna16") / "raw"
    return write_luna16(root, count=LUNA_SPEC.scans, image_size=LUNA_SPEC.image_size, seed=LUNA_SPEC.seed)


@pytest.fixture
def luna_copy(luna_root, tmp_path) -> Path:
    return Path(shutil.copytree(luna_root, tmp_path / "raw"))

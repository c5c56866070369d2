"""A small synthetic ChestX-ray14 in the released layout, and its caches, shared by the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from dira.data.prepare import prepare_dataset
from dira.data.synthetic.chestxray14 import write_chestxray14

SPEC = SimpleNamespace(patients=40, png_size=96, seed=3, cache_size=32)


def _prepare_config(**prepare) -> dict:
    return {"prepare": {"image_size": SPEC.cache_size, "workers": 1, **prepare}}


@pytest.fixture(scope="session")
def cxr14_spec() -> SimpleNamespace:
    """How ``cxr14_root`` and ``cxr14_caches`` were made."""
    return SPEC


@pytest.fixture(scope="session")
def prepare_config():
    """``prepare_config(workers=2)`` -> a config for ``prepare_dataset`` at the tests' cache size."""
    return _prepare_config


@pytest.fixture(scope="session")
def cxr14_root(tmp_path_factory) -> Path:
    """Read-only: tests that damage the dataset use ``cxr14_copy``."""
    root = tmp_path_factory.mktemp("cxr14") / "raw"
    write_chestxray14(root, patients=SPEC.patients, image_size=SPEC.png_size, seed=SPEC.seed)
    return root


@pytest.fixture
def cxr14_copy(cxr14_root, tmp_path) -> Path:
    return Path(shutil.copytree(cxr14_root, tmp_path / "raw"))


@pytest.fixture(scope="session")
def cxr14_caches(cxr14_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cxr14_h5")
    prepare_dataset("chestxray14", cxr14_root, out, _prepare_config())
    return out

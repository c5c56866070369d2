"""Small synthetic ChestX-ray14 and CheXpert sets in their released layouts, and their caches, for the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from dira.data.prepare import DATASETS, prepare_dataset
from dira.data.synthetic.chestxray14 import write_chestxray14
from dira.data.synthetic.chexpert import write_chexpert
from dira.registry import DATASETS as REGISTERED

# 2D datasets have a cache_size; 3D ones a crop shape instead
IMAGE_DATASETS = [name for name in DATASETS if REGISTERED[name].dims == 2]

SPEC = SimpleNamespace(patients=40, png_size=96, seed=3, cache_size=32)


def _prepare_config(cache_size: int = SPEC.cache_size, **prepare) -> dict:
    datasets = {name: {"cache_size": cache_size} for name in IMAGE_DATASETS}
    return {"prepare": {"workers": 1, **prepare}, "datasets": datasets}


@pytest.fixture(scope="session")
def cxr14_spec() -> SimpleNamespace:
    """How ``cxr14_root`` and ``cxr14_caches`` were made."""
    return SPEC


@pytest.fixture(scope="session")
def prepare_config():
    """``prepare_config(workers=2)`` -> a config for ``prepare_dataset``, every dataset at the tests' cache size."""
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


# ---- CheXpert ------------------------------------------------------------------------------------------------

CHEXPERT_SPEC = SimpleNamespace(patients=30, jpeg_size=80, seed=4, cache_size=32)


@pytest.fixture(scope="session")
def chexpert_spec() -> SimpleNamespace:
    """How ``chexpert_root`` and ``chexpert_caches`` were made."""
    return CHEXPERT_SPEC


@pytest.fixture(scope="session")
def chexpert_root(tmp_path_factory) -> Path:
    """The synthetic CheXpert-v1.0-small/ folder (holding train.csv). Read-only: damage ``chexpert_copy``."""
    return write_chexpert(tmp_path_factory.mktemp("chexpert"), patients=CHEXPERT_SPEC.patients,
                          image_size=CHEXPERT_SPEC.jpeg_size, seed=CHEXPERT_SPEC.seed)


@pytest.fixture
def chexpert_copy(chexpert_root, tmp_path) -> Path:
    return Path(shutil.copytree(chexpert_root, tmp_path / chexpert_root.name))


@pytest.fixture(scope="session")
def chexpert_caches(chexpert_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chexpert_h5")
    prepare_dataset("chexpert", chexpert_root, out, _prepare_config(CHEXPERT_SPEC.cache_size))
    return out


# ---- segmentation sets: SIIM-ACR and Montgomery -----------------------------------------------------------

SIIM_SPEC = SimpleNamespace(images=30, dicom_size=96, seed=5, cache_size=48)
MONTGOMERY_SPEC = SimpleNamespace(images=16, long_side=96, seed=2, cache_size=48)


@pytest.fixture(scope="session")
def siim_spec() -> SimpleNamespace:
    """How ``siim_root`` and ``siim_caches`` were made."""
    return SIIM_SPEC


@pytest.fixture(scope="session")
def siim_root(tmp_path_factory) -> Path:
    """Read-only: tests that damage the dataset use ``siim_copy``."""
    from dira.data.synthetic.siim import write_siim

    root = tmp_path_factory.mktemp("siim") / "raw"
    write_siim(root, count=SIIM_SPEC.images, image_size=SIIM_SPEC.dicom_size, seed=SIIM_SPEC.seed)
    return root


@pytest.fixture
def siim_copy(siim_root, tmp_path) -> Path:
    return Path(shutil.copytree(siim_root, tmp_path / "raw"))


@pytest.fixture(scope="session")
def siim_caches(siim_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("siim_h5")
    prepare_dataset("siim", siim_root, out, _prepare_config(SIIM_SPEC.cache_size))
    return out


@pytest.fixture(scope="session")
def montgomery_spec() -> SimpleNamespace:
    """How ``montgomery_root`` and ``montgomery_caches`` were made."""
    return MONTGOMERY_SPEC


@pytest.fixture(scope="session")
def montgomery_root(tmp_path_factory) -> Path:
    """The MontgomerySet folder; read-only: tests that damage the dataset use ``montgomery_copy``."""
    from dira.data.synthetic.montgomery import write_montgomery

    return write_montgomery(tmp_path_factory.mktemp("montgomery"), count=MONTGOMERY_SPEC.images,
                            image_size=MONTGOMERY_SPEC.long_side, seed=MONTGOMERY_SPEC.seed)


@pytest.fixture
def montgomery_copy(montgomery_root, tmp_path) -> Path:
    return Path(shutil.copytree(montgomery_root, tmp_path / "MontgomerySet"))


@pytest.fixture(scope="session")
def montgomery_caches(montgomery_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("montgomery_h5")
    prepare_dataset("montgomery", montgomery_root, out, _prepare_config(MONTGOMERY_SPEC.cache_size))
    return out

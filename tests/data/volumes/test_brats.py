"""BraTS 2018 on a small synthetic set: layout and labels, brain z-scoring, folds, the preparer's caches."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from dira.data.prepare.brats import hold_out, patient_folds, prepare_brats, split_cases
from dira.data.sources.brats import CASE, MODALITIES, read_brats, read_case, read_folds, zscore_in_brain
from dira.data.synthetic.brats import write_brats
from dira.data.volumes.nifti import read_nifti
from dira.errors import InputError

CASES, IMAGE_SIZE, SEED = 6, 40, 2
CROP = (16, 32, 32)


def settings(folds_dir: Path | None = None, policy: str = "error") -> dict:
    return {"prepare": {"workers": 1, "on_bad_sample": policy}, "datasets": {"brats": {
        "crop_shape": list(CROP), "folds_dir": None if folds_dir is None else str(folds_dir), "val_fraction": 0.125,
        "split_seed": 4, "patches": {"per_case": 4, "target_fraction": 0.5, "seed": 0}}}}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_brats(tmp_path_factory.mktemp("brats") / "raw", count=CASES, image_size=IMAGE_SIZE, seed=SEED)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_brats(raw, out, settings())
    return out


@pytest.fixture
def copy(raw, tmp_path) -> Path:
    return Path(shutil.copytree(raw, tmp_path / "raw"))


def _rewrite_seg(path: Path, change) -> None:
    seg = nib.load(path, mmap=False)
    labels = np.asarray(seg.dataobj).copy()
    change(labels)
    nib.save(nib.Nifti1Image(labels, seg.affine), path)


def test_reader_finds_the_release_layout(raw):
    index = read_brats(raw)
    assert len(index.cases) == CASES and index.source == "synthetic"
    for case in index.cases.values():
        assert CASE.match(case.id) and case.folder.parent.name == case.grade in ("HGG", "LGG")
        for kind in (*MODALITIES, "seg"):
            assert case.file(kind).name == f"{case.id}_{kind}.nii.gz" and case.file(kind).is_file()
        images, labels, geometry = read_case(case)
        assert images.shape == (4, *geometry.array_shape) and images.dtype == np.float32
        assert set(np.unique(labels)) <= {0, 1, 2, 4} and (labels > 0).any()
        assert geometry.spacing == (1.0, 1.0, 1.0)
    assert CASE.match("Brats18_2013_2_1") and CASE.match("Brats18_CBICA_AAB_1") and not CASE.match("BraTS20_001")


def test_zscore_inside_the_brain_leaves_the_background_at_zero(raw):
    case = next(iter(read_brats(raw).cases.values()))
    images, _, _ = read_case(case)
    for channel, modality in enumerate(MODALITIES):
        raw_image = read_nifti(case.file(modality)).array
        brain = raw_image > 0
        assert 0.2 < brain.mean() < 0.8  # an ellipsoid inside a background of exact zeros
        inside = images[channel][brain].astype(np.float64)
        assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-4, modality
        assert (images[channel][~brain] == 0).all()
    volume = np.zeros((4, 5, 6), np.float32)
    volume[1:3, 1:4, 2:5] = np.arange(18).reshape(2, 3, 3) + 100
    normalised = zscore_in_brain(volume)
    assert (normalised[volume == 0] == 0).all() and np.isclose(normalised[volume > 0].std(), 1)


def test_label_3_is_an_error_naming_the_seg_file(copy):
    case = next(iter(read_brats(copy).cases.values()))
    _rewrite_seg(case.file("seg"), lambda labels: labels.__setitem__((0, 0, 0), 3))
    with pytest.raises(InputError, match=r"labels \[3\].*unused") as err:
        read_case(case)
    assert str(case.file("seg")) in str(err.value)


def test_a_modality_off_the_grid_is_an_error_naming_both_files(copy):
    case = next(iter(read_brats(copy).cases.values()))
    t2 = nib.load(case.file("t2"), mmap=False)
    affine = t2.affine.copy()
    affine[2, 3] += 2
    nib.save(nib.Nifti1Image(np.asarray(t2.dataobj), affine), case.file("t2"))
    with pytest.raises(InputError, match="affine differs") as err:
        read_case(case)
    assert str(case.file("t2")) in str(err.value) and str(case.file("t1")) in str(err.value)


def test_folds_files_give_models_genesis_splits(raw, tmp_path):
    ids = list(read_brats(raw).cases)
    folds = tmp_path / "folds"
    folds.mkdir()
    for k, part in enumerate((ids[0:2], ids[2:4], ids[4:6]), start=1):
        (folds / f"fold_{k}.csv").write_text("".join(f"{c}\n" for c in part) + "\n")
    splits, origin = split_cases(read_brats(raw), settings(folds)["datasets"]["brats"])
    assert splits["test"] == ids[4:6] and sorted(splits["train"] + splits["val"]) == sorted(ids[:4])
    assert len(splits["val"]) == 1 and origin == str(folds.resolve())
    assert hold_out(list("abcdefghijklmnop"), 1 / 8, 4) == hold_out(list("abcdefghijklmnop"), 1 / 8, 4)
    assert len(hold_out([str(n) for n in range(190)], 1 / 8, 4)[1]) == 24  # Models Genesis: 190 train+val cases
    (folds / "fold_2.csv").write_text(f"{ids[2]}\nBrats18_CBICA_ZZZ_1\n")
    with pytest.raises(InputError, match=r"fold_2.csv: line 2: case Brats18_CBICA_ZZZ_1 has no case folder"):
        read_folds(folds, read_brats(raw).cases)


def test_without_folds_the_split_is_patient_level_and_deterministic(raw):
    index = read_brats(raw)
    folds = patient_folds(index, 4)
    assert folds == patient_folds(index, 4) and sorted(c for fold in folds for c in fold) == sorted(index.cases)
    assert all(len(fold) == CASES // 3 for fold in folds)


def test_caches_have_the_layout_and_split_sizes(prepared, raw):
    splits = json.loads((prepared / "splits.json").read_text())
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (3, 1, 2)
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == sorted(read_brats(raw).cases)
    for split, cases in (("train", 3), ("val", 1)):
        with h5py.File(prepared / f"{split}.h5") as f:
            assert f["images"].shape == (4 * cases, 4, *CROP) and f["images"].dtype == np.float16
            assert f["masks"].shape == (4 * cases, *CROP) and f["masks"].dtype == np.uint8
            assert f.attrs["dataset"] == "brats" and f.attrs["split"] == split and f.attrs["axes"] == "czyx"
            assert json.loads(f.attrs["intensity"])["channels"] == list(MODALITIES)
            assert list(f["source_ids"].asstr()[()]) == splits[split]
            on_target, masks = f["on_target"][()], f["masks"][()]
            assert on_target.sum() == 2 * cases and all(masks[r].any() for r in np.flatnonzero(on_target))
            images = f["images"][()].astype(np.float32)
            assert np.isfinite(images).all() and np.abs(images).max() < 50
            flair = images[:, MODALITIES.index("flair")]
            assert flair[masks == 1].mean() > flair[(masks == 0) & (flair != 0)].mean() + 1  # oedema is bright
    with h5py.File(prepared / "test_volumes.h5") as f:
        assert list(f["ids"].asstr()[()]) == splits["test"]
        for case_id in splits["test"]:
            images, labels, geometry = read_case(read_brats(raw).cases[case_id])
            entry = f[f"cases/{case_id}"]
            assert entry["image"].shape == (4, *geometry.array_shape) and entry["image"].dtype == np.float16
            assert np.allclose(entry["image"][()], images, atol=1e-2)
            assert np.array_equal(entry["labels"][()], labels)
            assert np.array_equal(entry["mask"][()], np.isin(labels, (1, 2, 4)))


def test_skip_reports_a_case_with_a_missing_modality(copy, tmp_path):
    case = read_brats(copy).cases[json.loads(_splits(copy, tmp_path))["train"][0]]
    case.file("flair").unlink()
    with pytest.raises(InputError, match="flair"):
        prepare_brats(copy, tmp_path / "error", settings())
    prepare_brats(copy, tmp_path / "skip", settings(policy="skip"))
    with (tmp_path / "skip" / "bad_samples.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [case.id] and "flair" in rows[0]["reason"]
    with h5py.File(tmp_path / "skip" / "train.h5") as f:
        assert case.id not in list(f["source_ids"].asstr()[()]) and len(f["source_ids"]) == 2


def _splits(root: Path, tmp_path: Path) -> str:
    prepare_brats(root, tmp_path / "first", settings())
    return (tmp_path / "first" / "splits.json").read_text()


def test_synthetic_set_is_deterministic_and_never_overwrites_a_real_copy(raw, tmp_path):
    again = write_brats(tmp_path / "again", count=CASES, image_size=IMAGE_SIZE, seed=SEED)
    ours = sorted(p.relative_to(raw) for p in raw.rglob("*.nii.gz"))
    assert ours == sorted(p.relative_to(again) for p in again.rglob("*.nii.gz"))
    assert all((again / p).read_bytes() == (raw / p).read_bytes() for p in ours)
    real = tmp_path / "real"
    (real / "HGG").mkdir(parents=True)
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_brats(real, count=CASES, image_size=IMAGE_SIZE, seed=SEED)


def test_release_folder_is_found_and_stray_folders_are_errors(copy, tmp_path):
    nested = tmp_path / "nested"
    shutil.copytree(copy, nested / "MICCAI_BraTS_2018_Data_Training")
    assert len(read_brats(nested).cases) == CASES
    (copy / "HGG" / "notes").mkdir()
    with pytest.raises(InputError, match="notes: not a BraTS 2018 case folder"):
        read_brats(copy)

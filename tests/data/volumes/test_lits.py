"""LiTS 2017 on a small synthetic set: NIfTI reading and reorientation, grid checks, the preparer's caches."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from dira.data.prepare.lits import prepare_lits, split_cases
from dira.data.prepare.patches import draw_centres, patch_start
from dira.data.sources.lits import read_case, read_lits
from dira.data.synthetic.lits import case_numbers, write_lits
from dira.data.volumes.geometry import Geometry, array_index, index_to_world, world_to_index
from dira.data.volumes.nifti import LPS_FROM_RAS, read_aligned, read_nifti, write_nifti
from dira.data.volumes.resample import resample_nearest, resampled_geometry
from dira.errors import InputError

CASES, IMAGE_SIZE, SEED = 6, 48, 3  # volumes 0-3 (train), 100 (val), 115 (test)
CROP = (16, 32, 32)
IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
DIRECTIONS = [IDENTITY, ((-1, 0, 0), (0, -1, 0), (0, 0, 1)), ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
              ((0, 1, 0), (-1, 0, 0), (0, 0, 1))]


def settings(**lits) -> dict:
    section = {"crop_shape": list(CROP), "hu_window": [-1000, 1000], "spacing": None, "dtype": "float16",
               "splits": {"train": [0, 99], "val": [100, 114], "test": [115, 129]},
               "patches": {"per_case": 6, "target_fraction": 0.5, "body_hu": -500, "seed": 0}, **lits}
    return {"prepare": {"workers": 1, "on_bad_sample": "error"}, "datasets": {"lits": section}}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_lits(tmp_path_factory.mktemp("lits") / "raw", count=CASES, image_size=IMAGE_SIZE, seed=SEED)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_lits(raw, out, settings())
    return out


@pytest.fixture
def copy(raw, tmp_path) -> Path:
    return Path(shutil.copytree(raw, tmp_path / "raw"))


def test_reader_indexes_and_reads_every_case_in_lps(raw):
    index = read_lits(raw)
    assert list(index.cases) == [0, 1, 2, 3, 100, 115] == case_numbers(CASES) and index.source == "synthetic"
    stored = {nib.load(c.volume).header.get_data_dtype() for c in index.cases.values()}
    assert {np.dtype(np.int16), np.dtype(np.float32)} <= stored  # read alike
    for case in index.cases.values():
        volume, labels, geometry = read_case(case)
        assert volume.dtype == np.float32 and labels.dtype == np.uint8
        assert volume.shape == labels.shape == geometry.array_shape
        assert np.allclose(geometry.direction, IDENTITY)
        assert set(np.unique(labels)) <= {0, 1, 2} and (labels == 1).any()
        assert volume[labels > 0].mean() > 80 and volume[0, 0, 0] < -900  # contrast-enhanced liver, air outside


def test_liver_is_on_the_patients_right_in_every_orientation(raw):
    """Cases 0, 1, 2 are stored LPS+, flipped in x and y, flipped in z: after reorientation alike."""
    for number in (0, 1, 2):
        case = read_lits(raw).cases[number]
        _, labels, _ = read_case(case)
        body_x = labels.shape[2] / 2
        liver_x = np.nonzero(labels)[2].mean()
        assert liver_x < body_x, number  # LPS+: index i grows towards the patient's left
    flips = [nib.aff2axcodes(nib.load(read_lits(raw).cases[n].volume).affine) for n in (0, 1, 2)]
    assert len(set(flips)) == 3  # the three stored orientations differ


@pytest.mark.parametrize("direction", DIRECTIONS, ids=["lps", "flipped_xy", "flipped_z", "permuted"])
def test_a_voxel_keeps_its_world_position_through_reorientation(tmp_path, direction):
    geometry = Geometry((12.0, -30.0, 80.0), (0.7, 0.9, 2.5), direction, (9, 11, 7))
    index = np.array([2, 7, 5])  # i, j, k of the marked voxel
    image = np.zeros(geometry.array_shape, np.int16)
    mask = np.zeros(geometry.array_shape, np.uint8)
    image[tuple(array_index(index))], mask[tuple(array_index(index))] = 500, 1
    write_nifti(tmp_path / "ct.nii", image, geometry)
    write_nifti(tmp_path / "seg.nii", mask, geometry)
    world = index_to_world(geometry, index)
    (ct,), (seg,), canonical = read_aligned(tmp_path / "ct.nii", [tmp_path / "seg.nii"])
    assert np.allclose(canonical.direction, IDENTITY, atol=1e-6)
    assert np.allclose(sorted(canonical.spacing), sorted(geometry.spacing), atol=1e-5)
    found = world_to_index(canonical, world)
    assert np.allclose(found, np.rint(found), atol=1e-3)  # lands on a voxel centre
    at = tuple(array_index(np.rint(found).astype(int)))
    assert seg[at] == 1 and seg.sum() == 1 and ct[at] == 500
    # independently: nibabel's RAS+ canonical image puts the voxel at the same world point
    ras = nib.as_closest_canonical(nib.load(tmp_path / "seg.nii"))
    ijk = np.argwhere(np.asarray(ras.dataobj) == 1)[0]
    assert np.allclose(LPS_FROM_RAS @ nib.affines.apply_affine(ras.affine, ijk), world, atol=1e-3)


def test_mask_on_another_grid_is_an_error_naming_both_files(copy):
    case = read_lits(copy).cases[1]
    image = nib.load(case.volume, mmap=False)
    shifted = image.affine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(nib.load(case.segmentation, mmap=False).dataobj), shifted), case.segmentation)
    with pytest.raises(InputError, match="affine differs") as err:
        read_case(case)
    assert str(case.segmentation) in str(err.value) and str(case.volume) in str(err.value)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), image.affine), case.segmentation)
    with pytest.raises(InputError, match="shape") as err:
        read_case(case)
    assert str(case.segmentation) in str(err.value) and str(case.volume) in str(err.value)


def test_unknown_labels_missing_segmentation_and_broken_files_are_errors(copy, tmp_path):
    case = read_lits(copy).cases[2]
    seg = nib.load(case.segmentation, mmap=False)
    labels = np.asarray(seg.dataobj).astype(np.uint8)
    labels[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(labels, seg.affine), case.segmentation)
    with pytest.raises(InputError, match=r"labels \[3\]"):
        read_case(case)
    case.segmentation.unlink()
    with pytest.raises(InputError, match=r"segmentation .* is missing"):
        read_case(case)
    (tmp_path / "bad.nii").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match=r"bad\.nii"):
        read_nifti(tmp_path / "bad.nii")


def test_caches_have_the_layout_and_split_sizes(prepared, raw):
    splits = json.loads((prepared / "splits.json").read_text())
    assert splits["train"] == [f"volume-{n}" for n in (0, 1, 2, 3)]
    assert splits["val"] == ["volume-100"] and splits["test"] == ["volume-115"] and splits["unused"] == []
    for split, cases in (("train", 4), ("val", 1)):
        with h5py.File(prepared / f"{split}.h5") as f:
            assert f["images"].shape == (6 * cases, *CROP) and f["images"].dtype == np.float16
            assert f["masks"].shape == (6 * cases, *CROP) and f["masks"].dtype == np.uint8
            assert f.attrs["dataset"] == "lits" and f.attrs["split"] == split and f.attrs["axes"] == "zyx"
            assert json.loads(f.attrs["intensity"])["window"] == [-1000, 1000]
            assert f.attrs["spacing_field"] == "spacing_zyx" and np.isnan(f.attrs["spacing_mm"]).all()
            images, masks, on_target = f["images"][()], f["masks"][()], f["on_target"][()]
            assert images.min() >= 0 and images.max() <= 1 and set(np.unique(masks)) <= {0, 1}
            assert (on_target.reshape(cases, 6).sum(axis=1) == 3).all()  # half of each case's patches on the liver
            assert all(masks[r].any() for r in np.flatnonzero(on_target))
            assert len(f["source_ids"]) == cases
    with h5py.File(prepared / "test_volumes.h5") as f:
        assert [i.decode() for i in f["ids"][()]] == ["volume-115"] and f.attrs["split"] == "test"
        entry = f["cases/volume-115"]
        _, labels, geometry = read_case(read_lits(raw).cases[115])
        assert entry["image"].shape == entry["mask"].shape == geometry.array_shape
        assert entry["image"].dtype == np.float16 and entry["mask"].dtype == np.uint8
        assert np.array_equal(entry["mask"][()], labels > 0) and np.array_equal(entry["labels"][()], labels)
        assert np.allclose(entry.attrs["spacing_zyx"], geometry.spacing[::-1])


def test_patch_centres_map_back_to_the_world(prepared, raw):
    with h5py.File(prepared / "train.h5") as f:
        ids, centres, world = f["source_ids"].asstr()[()], f["centres_zyx"][()], f["centres_world"][()]
        source = f["source_index"][()]
    for row in range(0, len(source), 5):
        number = int(ids[source[row]].split("-")[1])
        _, _, geometry = read_case(read_lits(raw).cases[number])
        assert np.allclose(index_to_world(geometry, centres[row][::-1].astype(float)), world[row], atol=1e-3)


def test_resampled_preparation_records_its_spacing(raw, tmp_path):
    spacing = [1.5, 1.5, 2.0]
    prepare_lits(raw, tmp_path, settings(spacing=spacing))
    with h5py.File(tmp_path / "train.h5") as f:
        assert np.allclose(f.attrs["spacing_mm"], spacing[::-1]) and len(f["images"]) == 24
    _, labels, geometry = read_case(read_lits(raw).cases[115])
    with h5py.File(tmp_path / "test_volumes.h5") as f:
        mask = f["cases/volume-115/mask"][()]
    target = resampled_geometry(geometry, tuple(spacing))
    assert mask.shape == target.array_shape
    assert np.array_equal(mask, resample_nearest(labels, geometry, tuple(spacing)) > 0)
    assert abs(mask.sum() * np.prod(spacing) - (labels > 0).sum() * np.prod(geometry.spacing)) < \
        0.25 * (labels > 0).sum() * np.prod(geometry.spacing)  # the liver keeps its volume


def test_skip_reports_a_bad_case_and_error_stops(copy, tmp_path):
    case = read_lits(copy).cases[3]
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), case.segmentation)
    with pytest.raises(InputError, match="segmentation-3"):
        prepare_lits(copy, tmp_path / "error", settings())
    config = settings()
    config["prepare"]["on_bad_sample"] = "skip"
    prepare_lits(copy, tmp_path / "skip", config)
    with (tmp_path / "skip" / "bad_samples.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], Path(r["file"]).name) for r in rows] == [("volume-3", "volume-3.nii")]
    assert "segmentation-3.nii" in rows[0]["reason"]
    assert json.loads((tmp_path / "skip" / "splits.json").read_text())["train"] == ["volume-0", "volume-1", "volume-2"]


def test_split_ranges_are_config_and_checked():
    assert split_cases([0, 5, 99, 100, 114, 115, 129, 130], {"train": [0, 99], "val": [100, 114], "test": [115, 129]}) \
        == {"train": [0, 5, 99], "val": [100, 114], "test": [115, 129]}
    assert split_cases(range(6), {"train": [0, 3], "val": [4, 4], "test": [5, 5]})["val"] == [4]
    with pytest.raises(InputError, match="overlap"):
        split_cases(range(6), {"train": [0, 3], "val": [3, 4], "test": [5, 5]})


def test_patch_start_stays_inside_or_centres_when_too_small():
    assert patch_start(np.array([0, 50, 99]), (40, 100, 100), (16, 32, 32)).tolist() == [0, 34, 68]
    assert patch_start(np.array([5, 5, 5]), (10, 100, 100), (16, 32, 32)).tolist() == [-3, 0, 0]


def test_synthetic_set_is_deterministic_and_never_overwrites_a_real_copy(raw, tmp_path):
    again = write_lits(tmp_path / "again", count=CASES, image_size=IMAGE_SIZE, seed=SEED)
    for path in sorted(raw.glob("*.nii")):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    write_lits(again, count=CASES, image_size=IMAGE_SIZE, seed=SEED)  # its own output: rewritten
    real = tmp_path / "real"
    real.mkdir()
    (real / "volume-0.nii").write_bytes(b"")
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_lits(real, count=CASES, image_size=IMAGE_SIZE, seed=SEED)


@pytest.mark.parametrize("target_share", [0.01, 0.3])  # listed voxels / rejection sampling
def test_centres_fall_in_their_masks_in_the_stated_share(target_share):
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(20, 30, 40)) < target_share
    body = rng.uniform(size=target.shape) < 0.5
    centres = draw_centres(np.random.default_rng(1), target, body, 40, 0.25)
    assert sum(on for _, on in centres) == 10
    assert all((target if on else body)[tuple(c)] for c, on in centres)
    assert [c.tolist() for c, _ in centres] == [c.tolist() for c, _ in
                                                 draw_centres(np.random.default_rng(1), target, body, 40, 0.25)]
    assert sum(on for _, on in draw_centres(rng, np.zeros_like(target), body, 8, 0.5)) == 0  # no liver: all body


def test_training_batches_in_subfolders_are_found(copy):
    batch = copy / "Training_Batch2"
    batch.mkdir()
    for name in ("volume-100.nii", "segmentation-100.nii"):
        (copy / name).rename(batch / name)
    case = read_lits(copy).cases[100]
    assert case.volume.parent == batch == case.segmentation.parent
    (copy / "volume-100.nii").write_bytes(b"")
    with pytest.raises(InputError, match="also at"):
        read_lits(copy)

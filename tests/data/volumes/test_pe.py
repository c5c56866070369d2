"""Pulmonary embolism: the CAD-PE reader and synthetic writer, the candidate scheme, PE-CAD's split files, the
preparer's caches, and the skip when neither set is there.

Synthetic CAD-PE goes through the same files (NRRD via SimpleITK) and code as the real set: six 48-px scans,
flipped and unflipped, anisotropic voxels, with emboli at known world positions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial import cKDTree

from dira.data.prepare.pe import ScanSource, prepare_pe, split_patients
from dira.data.prepare.volume_crops import CropSettings
from dira.data.sources.pe import (
    CAD_PE_URL,
    CadPeCase,
    PEUnavailable,
    read_cad_pe,
    read_case,
    read_image,
    read_pe_cad,
)
from dira.data.synthetic.pe import (
    FLIPPED,
    IDENTITY,
    PlannedScan,
    Tube,
    draw,
    plan_scan,
    plan_scans,
    write_pe,
    write_volume,
)
from dira.data.volumes.geometry import Geometry, array_index, index_to_world, world_to_index
from dira.errors import InputError

SCANS, IMAGE_SIZE, SEED = 6, 48, 3
FPR_FILES = ("fpr_train", "fpr_val", "fpr_test")
PE = {
    "crop_shape": [16, 32, 32], "hu_window": [-1000, 1000], "spacing": None, "dtype": "float16",
    "splits": {"fractions": [0.63, 0.04, 0.33], "seed": 0},
    "candidates": {"negatives_per_scan": 8, "min_distance_mm": 8.0, "negative_region": "vessels",
                   "vessel_hu": [100, 600], "body_hu": -500, "extra_positives": 0, "extra_min_voxels": 200, "seed": 0},
    "pe_cad": {"splits_dir": None, "fold": 1, "candidates": None, "scans_dir": None},
}


def config(on_bad_sample: str = "error", **pe) -> dict:
    section = copy.deepcopy(PE)
    for key, value in pe.items():
        section[key] = {**section[key], **value} if isinstance(value, dict) else value
    return {"prepare": {"workers": 1, "on_bad_sample": on_bad_sample}, "datasets": {"pe": section}}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_pe(tmp_path_factory.mktemp("pe") / "raw", count=SCANS, image_size=IMAGE_SIZE, seed=SEED)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_pe(raw, out, config())
    return out


def read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in f}
        data["attrs"] = dict(f.attrs)
    return data


# ---- reader and synthetic writer -------------------------------------------------------------------------

def test_reader_on_the_synthetic_set(raw):
    index = read_cad_pe(raw)
    plans = plan_scans(SCANS, IMAGE_SIZE, SEED)
    assert list(index.cases) == [f"{n:03d}" for n in range(1, SCANS + 1)] and index.source == "synthetic"
    assert {p.flipped for p in plans} == {True, False}
    for case, plan in zip(index.cases.values(), plans, strict=True):
        assert case.image.name == f"{case.id}.nrrd" and case.mask.name == f"{case.id}RefStd.nrrd"
        volume, mask, geometry = read_case(case)
        assert volume.dtype == np.int16 and mask.dtype == bool and volume.shape == mask.shape == geometry.array_shape
        assert geometry.size == plan.geometry.size and geometry.direction == plan.geometry.direction
        assert np.allclose(geometry.origin, plan.geometry.origin)
        assert np.allclose(geometry.spacing, plan.geometry.spacing)
        expected = draw(plan, np.random.default_rng(0))[1].astype(bool)  # the mask does not depend on the noise
        assert np.array_equal(mask, expected) and mask.any()
        assert 0 < volume[mask].mean() < 100 < np.percentile(volume, 99.9)  # dark defects, bright contrast


def test_images_and_masks_subfolders(raw, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for path in raw.glob("*.nrrd"):
        shutil.copy(path, tmp_path / ("masks" if "RefStd" in path.name else "images") / path.name)
    index = read_cad_pe(tmp_path)
    assert len(index.cases) == SCANS and index.cases["002"].mask == tmp_path / "masks" / "002RefStd.nrrd"
    (tmp_path / "masks" / "002RefStd.nrrd").unlink()
    with pytest.raises(InputError, match=r"002\.nrrd: no reference mask"):
        read_cad_pe(tmp_path)


def test_synthetic_files_are_byte_identical_and_a_real_set_is_kept(raw, tmp_path):
    again = write_pe(tmp_path / "again", count=SCANS, image_size=IMAGE_SIZE, seed=SEED)
    for path in raw.iterdir():
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256((again / path.name).read_bytes()).digest()
    real = tmp_path / "real"
    real.mkdir()
    (real / "001.nrrd").write_bytes(b"not ours")
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_pe(real, count=2, image_size=IMAGE_SIZE, seed=0)
    assert (real / "001.nrrd").read_bytes() == b"not ours"


def test_a_mask_on_another_grid_names_both_files(raw, tmp_path):
    image, mask = raw / "003.nrrd", tmp_path / "003RefStd.nrrd"
    array, geometry = read_image(raw / "003RefStd.nrrd")
    write_volume(mask, array, Geometry(geometry.origin, tuple(s * 1.1 for s in geometry.spacing), geometry.direction,
                                       geometry.size))
    with pytest.raises(InputError, match=f"{re.escape(str(mask))}.*{re.escape(str(image))}.*spacing"):
        read_case(CadPeCase("003", image, mask))


def test_without_either_set_the_task_is_skipped(tmp_path):
    for root in (tmp_path / "missing", tmp_path):
        with pytest.raises(PEUnavailable) as caught:
            prepare_pe(root, tmp_path / "out", config())
        message = str(caught.value)
        assert "PE-CAD" in message and "private" in message and CAD_PE_URL in message and "skipped" in message
        assert isinstance(caught.value, InputError)
    assert not list(tmp_path.glob("out/*.h5"))


# ---- candidates ------------------------------------------------------------------------------------------

def _single_embolus_scan(tmp_path: Path, direction, spacing) -> tuple[CadPeCase, Tube]:
    size = (48, 48, 32)
    half = np.asarray(direction) @ (np.asarray(spacing) * (np.asarray(size) - 1) / 2)
    geometry = Geometry(tuple(np.array([4.0, -9.0, -150.0]) - half), spacing, direction, size)
    scan = plan_scan("007", np.random.default_rng(4), 48, False, 0, geometry)
    vessel = scan.vessels[0]
    # an embolus off the voxel grid on every axis, along the first vessel, away from the volume's faces
    centre = np.asarray(vessel.start) + 0.47 * (np.asarray(vessel.end) - np.asarray(vessel.start))
    axis = (np.asarray(vessel.end) - np.asarray(vessel.start)) / np.linalg.norm(np.subtract(vessel.end, vessel.start))
    embolus = Tube(tuple(centre - 3 * axis), tuple(centre + 3 * axis), 0.8 * vessel.radius, 40.0)
    planned = PlannedScan("007", geometry, scan.body, scan.lungs, scan.vessels[:1], (embolus,))
    volume, mask = draw(planned, np.random.default_rng(5))
    case = CadPeCase("007", tmp_path / "007.nrrd", tmp_path / "007RefStd.nrrd")
    write_volume(case.image, volume, geometry)
    write_volume(case.mask, mask, geometry)
    return case, embolus


@pytest.mark.parametrize(("direction", "spacing", "resample_to"), [
    (IDENTITY, (0.7, 0.7, 1.25), None), (FLIPPED, (0.62, 0.62, 2.0), None),
    (FLIPPED, (0.8, 0.8, 1.5), (1.0, 1.0, 1.0))])
def test_an_embolus_lands_at_the_centre_of_its_crop(tmp_path, direction, spacing, resample_to):
    case, embolus = _single_embolus_scan(tmp_path, direction, spacing)
    settings = CropSettings.of({**PE, "crop_shape": [32, 64, 64], "spacing": resample_to})
    rows = list(ScanSource(case, settings, PE["candidates"]).rows())
    positives = [row for row in rows if row.fields["labels"] == 1]
    assert len(positives) == 1 and len(rows) > 1
    row = positives[0]
    _, geometry = read_image(case.image)
    grid = geometry if resample_to is None else Geometry(geometry.origin, resample_to, geometry.direction, (1, 1, 1))
    # the mask's centroid is the embolus's centre (a quarter voxel: the capsule sampled on the grid) ...
    found = world_to_index(geometry, row.fields["points_world"])
    assert np.abs(found - world_to_index(geometry, embolus.centre)).max() <= 0.25
    # ... and the crop is centred on it within half a voxel, of the grid the crop is cut from
    point = array_index(world_to_index(grid, row.fields["points_world"]))
    assert np.abs(row.fields["centres_zyx"] - point).max() <= 0.5
    true = array_index(world_to_index(grid, embolus.centre))
    assert np.abs(row.fields["centres_zyx"] - true).max() <= 0.5 + 0.25
    assert np.allclose(row.fields["centres_world"], index_to_world(grid, row.fields["centres_zyx"][::-1]))
    hu = row.image.astype(np.float32) * 2000 - 1000
    assert 0 < hu[15:17, 31:33, 31:33].mean() < 100  # the filling defect at the centre, not contrast or lung
    if direction == FLIPPED:  # ignoring the matrix lands elsewhere
        naive = (np.asarray(embolus.centre) - geometry.origin) / np.asarray(geometry.spacing)
        assert np.abs(naive - world_to_index(geometry, embolus.centre)).max() > 5


def test_negatives_keep_their_distance_from_every_embolus(prepared, raw):
    index = read_cad_pe(raw)
    counted = 0
    for name in FPR_FILES:
        data = read(prepared / f"{name}.h5")
        ids = [s.decode() for s in data["source_ids"]]
        for source, uid in enumerate(ids):
            volume, mask, geometry = read_case(index.cases[uid])
            emboli = cKDTree(index_to_world(geometry, np.stack(np.nonzero(mask), axis=1)[:, ::-1]))
            rows = data["source_index"] == source
            negatives = data["points_world"][rows & (data["labels"] == 0)]
            assert 0 < len(negatives) <= PE["candidates"]["negatives_per_scan"]
            assert emboli.query(negatives)[0].min() >= PE["candidates"]["min_distance_mm"]
            voxel = np.rint(array_index(world_to_index(geometry, negatives))).astype(int)
            assert ((volume[tuple(voxel.T)] >= 100) & (volume[tuple(voxel.T)] <= 600)).all()  # in a vessel
            counted += len(negatives)
    assert counted > 0


def test_extra_positives_inside_large_components(raw):
    case = read_cad_pe(raw).cases["001"]
    candidates = {**PE["candidates"], "extra_positives": 3, "extra_min_voxels": 1, "negatives_per_scan": 0}
    rows = list(ScanSource(case, CropSettings.of(PE), candidates).rows())
    _, mask, geometry = read_case(case)
    components = len(plan_scans(SCANS, IMAGE_SIZE, SEED)[0].emboli)
    assert len(rows) == 4 * components and all(row.fields["labels"] == 1 for row in rows)
    for row in rows[components:]:  # the extra points are embolus voxels
        assert mask[tuple(np.rint(array_index(world_to_index(geometry, row.fields["points_world"]))).astype(int))]


# ---- preparer --------------------------------------------------------------------------------------------

def test_the_caches_their_layout_and_labels(prepared, raw):
    splits = json.loads((prepared / "splits.json").read_text())
    assert sorted(splits["fpr_train"] + splits["fpr_val"] + splits["fpr_test"]) == sorted(read_cad_pe(raw).cases)
    assert splits["fpr_val"] and splits == {**splits, **{f"fpr_{k}": v for k, v in split_patients(
        list(read_cad_pe(raw).cases), PE["splits"]["fractions"], 0).items()}}
    plans = {p.name: p for p in plan_scans(SCANS, IMAGE_SIZE, SEED)}
    for name in FPR_FILES:
        data = read(prepared / f"{name}.h5")
        n = len(data["images"])
        assert data["images"].shape == (n, 16, 32, 32) and data["images"].dtype == np.float16
        assert data["images"].min() >= 0 and data["images"].max() <= 1
        assert data["labels"].dtype == np.uint8 and data["points_world"].shape == (n, 3)
        assert data["centres_zyx"].dtype == np.float32 and data["spacing_zyx"].shape == (n, 3)
        attrs = data["attrs"]
        assert attrs["dataset"] == "pe" and attrs["source"] == "synthetic" and attrs["split"] == name
        assert attrs["axes"] == "zyx" and np.isnan(attrs["spacing_mm"]).all()
        assert json.loads(attrs["intensity"])["window"] == [-1000, 1000]
        ids = [s.decode() for s in data["source_ids"]]
        assert ids == splits[name]
        for source, uid in enumerate(ids):
            labels = data["labels"][data["source_index"] == source]
            assert int(labels.sum()) == len(plans[uid].emboli)  # one positive per embolus
    assert (prepared / "bad_samples.csv").read_text() == "file,id,reason\n"


def test_skip_mode_lists_a_broken_scan(raw, tmp_path):
    root = Path(shutil.copytree(raw, tmp_path / "raw"))
    broken = root / "004.nrrd"
    broken.write_bytes(broken.read_bytes()[:300])
    with pytest.raises(InputError, match=r"004\.nrrd"):
        prepare_pe(root, tmp_path / "stopped", config())
    prepare_pe(root, tmp_path / "out", config("skip"))
    listed = (tmp_path / "out" / "bad_samples.csv").read_text().splitlines()
    assert len(listed) == 2 and listed[1].startswith(f"{broken},004,")
    splits = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert "004" not in splits["fpr_train"] + splits["fpr_val"] + splits["fpr_test"]


# ---- PE-CAD ----------------------------------------------------------------------------------------------

def _pe_cad(raw: Path, tmp_path: Path) -> tuple[Path, dict[str, list[str]], list[tuple[str, np.ndarray, int]]]:
    """Split files of fold 2 (and fold 1, to be ignored), a candidate table and Patient*.nrrd scans."""
    splits = {"train": ["Patient21108", "Patient03219"], "val": ["Patient00042"], "test": ["Patient10001"]}
    (tmp_path / "splits").mkdir()
    (tmp_path / "scans").mkdir()
    for fold in (1, 2):
        for split, ids in splits.items():
            ids = ids if fold == 2 else ids[::-1]
            (tmp_path / "splits" / f"{split}_cv-{fold}.csv").write_text("FileName\n" + "".join(f"{i}\n" for i in ids))
    rows = []
    for n, patient in enumerate(p for ids in splits.values() for p in ids):
        shutil.copy(raw / f"{n + 1:03d}.nrrd", tmp_path / "scans" / f"{patient}.nrrd")
        _, mask, geometry = read_case(read_cad_pe(raw).cases[f"{n + 1:03d}"])
        inside = index_to_world(geometry, np.stack(np.nonzero(mask), axis=1)[0, ::-1].astype(float))
        rows += [(patient, inside, 1), (patient, index_to_world(geometry, np.array([10.3, 20.6, 12.2])), 0)]
    rows.append(("Patient99999", np.zeros(3), 0))  # in no split: dropped
    table = "patient,x,y,z,label\n" + "".join(f"{p},{w[0]:.4f},{w[1]:.4f},{w[2]:.4f},{c}\n" for p, w, c in rows)
    (tmp_path / "candidates.csv").write_text(table)
    return tmp_path, splits, rows


def test_pe_cad_split_files_and_candidate_table(raw, tmp_path):
    root, splits, rows = _pe_cad(raw, tmp_path)
    settings = {"splits_dir": "splits", "fold": 2, "candidates": "candidates.csv", "scans_dir": "scans"}
    index = read_pe_cad(root, settings)
    assert index.splits == splits and "Patient99999" not in index.cases
    prepare_pe(root, tmp_path / "out", config(pe_cad=settings))
    written = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert written["set"] == "pe_cad" and written["fold"] == 2
    for split, ids in splits.items():
        data = read(tmp_path / "out" / f"fpr_{split}.h5")
        assert [s.decode() for s in data["source_ids"]] == ids == written[f"fpr_{split}"]
        expected = [(w, c) for p, w, c in rows if p in ids]
        assert data["labels"].tolist() == [c for _, c in expected]
        assert np.allclose(data["points_world"], [w for w, _ in expected], atol=1e-4)
        assert data["attrs"]["source"] == "real"
    assert json.loads(read(tmp_path / "out" / "fpr_val.h5")["attrs"]["manifest"])["set"] == "pe_cad"


def test_pe_cad_errors_name_the_file(raw, tmp_path):
    root, _, _ = _pe_cad(raw, tmp_path)
    settings = {"splits_dir": "splits", "fold": 1, "candidates": "candidates.csv", "scans_dir": "scans"}
    (root / "scans" / "Patient00042.nrrd").unlink()
    with pytest.raises(InputError, match=r"Patient00042\.nrrd: volume not found"):
        prepare_pe(root, tmp_path / "out", config(pe_cad=settings))
    prepare_pe(root, tmp_path / "skipped", config("skip", pe_cad=settings))
    assert "Patient00042" in (tmp_path / "skipped" / "bad_samples.csv").read_text()
    table = root / "candidates.csv"
    table.write_text(table.read_text() + "Patient21108,1,2,3,2\n")
    with pytest.raises(InputError, match=r"candidates.csv: line \d+: label '2'"):
        read_pe_cad(root, settings)
    with pytest.raises(PEUnavailable, match="private"):
        read_pe_cad(root, {**settings, "splits_dir": "nowhere"})


def test_mask_values(raw, tmp_path):
    array, geometry = read_image(raw / "001RefStd.nrrd")
    image = raw / "001.nrrd"
    write_volume(tmp_path / "255.nrrd", (array * 255).astype(np.uint8), geometry)  # 0/255 is binary too
    assert np.array_equal(read_case(CadPeCase("001", image, tmp_path / "255.nrrd"))[1], array == 1)
    labels = array.copy()
    labels[tuple(np.argwhere(array)[0])] = 2
    write_volume(tmp_path / "three.nrrd", labels, geometry)
    with pytest.raises(InputError, match=r"three\.nrrd: a binary mask"):
        read_case(CadPeCase("001", image, tmp_path / "three.nrrd"))

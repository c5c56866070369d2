"""LIDC-IDRI: DICOM series reading, LIDC XML reads -> consensus nodule masks, and `prepare lidc`'s crops.

A small synthetic set (classic layout, anisotropic voxels, 1-4 readers per nodule) goes through the same code
as the real one; broken copies test the errors.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from dira.data.prepare.lidc import SPLITS, prepare_lidc, split_patients
from dira.data.sources.lidc import (
    ReadNodule,
    Roi,
    consensus,
    fill_outline,
    nodules_of,
    parse_read,
    rasterise,
    read_lidc,
)
from dira.data.synthetic.lidc import draw, plan_patients, write_lidc
from dira.data.volumes.dicom_series import read_series
from dira.errors import InputError

PATIENTS, IMAGE_SIZE, SEED = 5, 48, 3
LIDC = {"crop_shape": [32, 64, 64], "hu_window": [-1000, 1000], "spacing": [1, 1, 1], "dtype": "float16",
        "consensus_level": 0.5, "cluster_mm": 5.0, "min_readers": 1, "include_small": False,
        "split": {"weights": [510, 100, 408], "seed": 0}}


def config(on_bad_sample: str = "error", **lidc) -> dict:
    return {"prepare": {"workers": 1, "on_bad_sample": on_bad_sample}, "datasets": {"lidc": {**LIDC, **lidc}}}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_lidc(tmp_path_factory.mktemp("lidc") / "raw", PATIENTS, IMAGE_SIZE, SEED)


@pytest.fixture(scope="module")
def plans() -> dict:
    return {p.series_uid: p for p in plan_patients(PATIENTS, IMAGE_SIZE, SEED)}


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_lidc(raw, out, config())
    return out


@pytest.fixture(scope="module")
def native(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native")
    prepare_lidc(raw, out, config(spacing=None))
    return out


def first(raw: Path):
    index = read_lidc(raw)
    return index, next(iter(index.series.values()))


def series_copy(raw: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(first(raw)[1].folder, tmp_path / "series"))


def read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {**{name: f[name][()] for name in f}, "attrs": dict(f.attrs)}


def test_series_is_sorted_by_position_whatever_the_file_names(raw, plans):
    _, ref = first(raw)
    plan = plans[ref.series_uid]
    series = read_series(ref.folder)
    names = [p.name for p in series.files]
    assert names != sorted(names)  # file names do not follow position
    assert series.geometry.origin == pytest.approx(plan.geometry.origin, abs=1e-3)
    assert series.geometry.spacing == pytest.approx(plan.geometry.spacing)
    assert series.geometry.size == plan.geometry.size
    expected = np.clip(np.rint(draw(plan, np.random.default_rng([SEED, int(plan.patient[-4:]) - 1, 1]))), -1024, 3071)
    assert series.volume.dtype == np.int16 and np.array_equal(series.volume, expected)
    assert series.sop_index == {uid: k for k, uid in enumerate(plan.sop_uids)} and series.duplicates == ()
    instance = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in series.files]
    assert instance == sorted(instance, reverse=True)  # LIDC numbers from the head down: order is by position


def _rewrite(path: Path, **tags) -> None:
    ds = pydicom.dcmread(path)
    for tag, value in tags.items():
        setattr(ds, tag, value)
    ds.save_as(path)


def test_rescale_slope_and_intercept_give_hu(raw, tmp_path):
    folder = series_copy(raw, tmp_path)
    before = read_series(folder).volume.astype(np.int32)
    for path in folder.glob("*.dcm"):
        _rewrite(path, RescaleSlope=2, RescaleIntercept=-1000)
    after = read_series(folder).volume
    assert after.dtype == np.int16 and np.array_equal(after, 2 * (before + 1024) - 1000)
    for path in folder.glob("*.dcm"):
        _rewrite(path, RescaleSlope=0.5, RescaleIntercept=-1024.5)
    fractional = read_series(folder).volume
    assert fractional.dtype == np.float32 and np.allclose(fractional, 0.5 * (before + 1024) - 1024.5)


@pytest.mark.parametrize("higher", [True, False])
def test_a_repeated_position_keeps_the_lower_instance_number(raw, tmp_path, higher):
    folder = series_copy(raw, tmp_path)
    series = read_series(folder)
    k = 5
    original = series.files[k]
    ds = pydicom.dcmread(original)
    number = int(ds.InstanceNumber)
    copy = folder / "zzz_repeat.dcm"
    shutil.copy(original, copy)
    _rewrite(copy, SOPInstanceUID="1.2.3.4.5", InstanceNumber=number + 100 if higher else number - 100,
             PixelData=np.full((IMAGE_SIZE, IMAGE_SIZE), 7, "<u2").tobytes())
    again = read_series(folder)
    assert again.volume.shape == series.volume.shape and again.sop_index["1.2.3.4.5"] == k
    if higher:
        assert again.duplicates == ((copy, original),) and np.array_equal(again.volume, series.volume)
    else:
        assert again.duplicates == ((original, copy),) and (again.volume[k] == 7 - 1024).all()


def test_a_missing_slice_is_an_error_naming_the_folder(raw, tmp_path):
    folder = series_copy(raw, tmp_path)
    read_series(folder).files[7].unlink()
    with pytest.raises(InputError, match=rf"{folder}: missing slice .*median step"):
        read_series(folder)


def test_the_index_matches_reads_to_series_and_skips_radiographs(raw, plans):
    index = read_lidc(raw)
    assert set(index.series) == set(plans) and index.skipped_series == 1 and index.unmatched_xmls == ()
    assert index.source == "synthetic" and len(index.patients) == PATIENTS
    assert parse_read(next((raw / "tcia-lidc-xml" / "cxr").glob("*.xml"))) is None  # IdriReadMessage
    for uid, ref in index.series.items():
        (xml,) = ref.xmls
        read = parse_read(xml)
        plan = plans[uid]
        assert read.series_uid == uid and read.study_uid == plan.study_uid and len(read.readers) == 4
        assert len(read.nodules) == sum(len(n.radii) for n in plan.nodules) + (plan.small is not None)
        series = read_series(ref.folder)
        for nodule in read.nodules:  # every roi's SOP UID is a slice, at that slice's z
            for roi in nodule.rois:
                assert roi.inclusion and series.slice_z[series.sop_index[roi.sop_uid]] == pytest.approx(roi.z)
            assert nodule.small == (nodule.nodule_id == "small-1")


def test_a_read_beside_its_slices_counts_once_and_its_study_must_agree(raw, tmp_path):
    root = Path(shutil.copytree(raw, tmp_path / "raw"))
    ref = first(root)[1]
    xml = ref.xmls[0]
    shutil.copy(xml, ref.folder / "069.xml")  # the classic download keeps the read in the series folder too
    assert read_lidc(root).series[ref.series_uid].xmls == (xml,)
    xml.write_text(xml.read_text().replace("<StudyInstanceUID>", "<StudyInstanceUID>9"))
    with pytest.raises(InputError, match=rf"{xml}: StudyInstanceUID 9"):
        read_lidc(root)


def _nodule(xml: Path, *rois: Roi, reader: str = "r0") -> ReadNodule:
    return ReadNodule(xml, reader, "n1", rois)


def _square(x0: int, x1: int) -> np.ndarray:
    return np.array([[x0, x0], [x1, x0], [x1, x1], [x0, x1]], float)


def test_exclusion_outlines_subtract_and_sop_uids_map_to_slices(raw):
    _, ref = first(raw)
    series = read_series(ref.folder)
    k, sop = 4, next(uid for uid, n in series.sop_index.items() if n == 4)
    z = float(series.slice_z[k])
    mask = rasterise(_nodule(Path("a.xml"), Roi(z, sop, True, _square(10, 30)), Roi(z, sop, False, _square(15, 25))),
                     series, ref.series_uid)
    assert mask.start == (k, 10, 10) and mask.mask.shape == (1, 21, 21) and mask.notes == ()
    plane = mask.mask[0]
    assert plane[0].all() and plane[:, 0].all()  # the inclusion outline's own pixels belong to the nodule
    assert not plane[6:15, 6:15].any() and plane[5, 5:16].all()  # the hole's interior is removed, its edge kept
    assert plane.sum() == 21 * 21 - 9 * 9
    point = fill_outline(np.array([[3.0, 4.0]]), (8, 8))  # a < 3 mm nodule's single (x, y) point
    assert point.sum() == 1 and point[4, 3]


def test_an_unknown_sop_uid_falls_back_to_z_or_fails_naming_the_xml(raw):
    _, ref = first(raw)
    series = read_series(ref.folder)
    z = float(series.slice_z[6])
    mask = rasterise(_nodule(Path("b.xml"), Roi(z + 0.1, "9.9.9", True, _square(5, 9))), series, ref.series_uid)
    assert mask.start[0] == 6 and len(mask.notes) == 1 and "9.9.9" in mask.notes[0]
    with pytest.raises(InputError, match=r"b\.xml: .*9\.9\.9 is not in series .*imageZposition"):
        beyond = float(series.slice_z.max()) + series.geometry.spacing[2]  # no slice there
        rasterise(_nodule(Path("b.xml"), Roi(beyond, "9.9.9", True, _square(5, 9))), series, ref.series_uid)


def test_readers_cluster_into_planned_nodules_and_consensus_is_half(raw, plans):
    index = read_lidc(raw)
    for uid, ref in index.series.items():
        series = read_series(ref.folder)
        found = nodules_of(ref, series, 5.0, 0.5)
        plan = plans[uid]
        assert len(found) == len(plan.nodules) + (plan.small is not None)
        for nodule in plan.nodules:
            match = min(found, key=lambda n: np.linalg.norm(n.centre_world - nodule.centre))
            assert match.readers == len(nodule.radii) and not match.small
            assert np.all(np.abs(match.centre_world - nodule.centre) <= 0.25 * np.asarray(series.geometry.spacing))
    _, ref = first(raw)
    series = read_series(ref.folder)
    sop = next(iter(series.sop_index))
    k = series.sop_index[sop]
    z = float(series.slice_z[k])
    masks = [rasterise(_nodule(Path("c.xml"), Roi(z, sop, True, _square(a, b)), reader=f"r{n}"), series, uid)
             for n, (a, b) in enumerate([(10, 20), (12, 22), (14, 24)])]
    two_of_three = consensus(masks, series.geometry, 0.5)
    assert two_of_three.start == (k, 10, 10) and two_of_three.mask.shape == (1, 15, 15)  # the members' box
    # voxels in >= 2 of the 3 squares: the union of the pairwise overlaps [12, 20]^2 and [14, 22]^2
    assert two_of_three.readers == 3 and two_of_three.mask.sum() == 81 + 81 - 49
    assert two_of_three.mask[0, 2, 2:11].all() and not two_of_three.mask[0, 2, 11:].any()
    assert consensus(masks[:2], series.geometry, 0.5).mask.sum() == 121 + 121 - 81  # 1 of 2 readers: the union
    assert consensus(masks, series.geometry, 1.0).mask.sum() == 49  # all three: [14, 20]^2


def _check_centres(data: dict, plans: dict, grid_spacing) -> None:
    ids = [s.decode() for s in data["source_ids"]]
    for row in range(len(data["images"])):
        plan = plans[ids[data["source_index"][row]]]
        spacing = np.asarray(plan.geometry.spacing)
        found = data["nodule_world"][row]
        true = min((n.centre for n in plan.nodules), key=lambda c: np.linalg.norm(np.subtract(c, found)))
        assert np.all(np.abs(data["nodule_world"][row] - true) <= 0.25 * spacing)
        step = spacing if grid_spacing is None else np.asarray(grid_spacing)
        assert np.all(np.abs(data["centres_world"][row] - data["nodule_world"][row]) <= 0.5 * step + 1e-6)
        mask = data["masks"][row]
        assert mask[15:17, 31:33, 31:33].any()  # the nodule at the crop's centre
        parts, _ = ndimage.label(mask)
        own = parts == np.bincount(parts[15:17, 31:33, 31:33].ravel())[1:].argmax() + 1  # not a neighbour's
        centroid = np.argwhere(own).mean(axis=0)
        assert np.all(np.abs(centroid - (np.asarray(mask.shape) - 1) / 2) <= 1.5)


def test_prepared_crops_are_centred_on_their_nodules(prepared, native, plans):
    for out, grid in ((prepared, (1.0, 1.0, 1.0)), (native, None)):  # 1 mm, and native anisotropic voxels
        rows = 0
        for split in SPLITS:
            data = read(out / f"{split}.h5")
            _check_centres(data, plans, grid)
            rows += len(data["images"])
        assert rows == sum(len(p.nodules) for p in plans.values())  # the < 3 mm points are left out


def test_prepared_caches_layout_and_patient_splits(prepared, raw):
    index = read_lidc(raw)
    splits = json.loads((prepared / "splits.json").read_text())
    patients = [set(splits["patients"][s]) for s in SPLITS]
    assert set().union(*patients) == set(index.patients) and sum(map(len, patients)) == PATIENTS
    for split in SPLITS:
        data = read(prepared / f"{split}.h5")
        assert data["images"].shape[1:] == (32, 64, 64) and data["images"].dtype == np.float16
        assert data["masks"].shape == data["images"].shape and data["masks"].dtype == np.uint8
        assert set(np.unique(data["masks"])) <= {0, 1} and data["readers"].min() >= 1
        assert data["images"].min() >= 0 and data["images"].max() <= 1
        assert data["attrs"]["axes"] == "zyx" and np.allclose(data["attrs"]["spacing_mm"], 1.0)
        assert data["attrs"]["split"] == split and data["attrs"]["dataset"] == "lidc"
        assert json.loads(data["attrs"]["intensity"])["window"] == [-1000, 1000]
        assert np.allclose(data["spacing_zyx"], 1.0)
        ids = [s.decode() for s in data["source_ids"]]
        assert ids == splits[split] and {index.series[u].patient for u in ids} == set(splits["patients"][split])
    assert (prepared / "bad_samples.csv").read_text() == "file,id,reason\n"


def test_skip_mode_lists_a_broken_series_in_bad_samples(raw, tmp_path):
    root = Path(shutil.copytree(raw, tmp_path / "raw"))
    _, ref = first(root)
    read_series(ref.folder).files[3].unlink()
    with pytest.raises(InputError, match="missing slice"):
        prepare_lidc(root, tmp_path / "strict", config())
    prepare_lidc(root, tmp_path / "out", config("skip"))
    with (tmp_path / "out" / "bad_samples.csv").open() as f:
        (bad,) = list(csv.DictReader(f))
    assert bad["id"] == ref.series_uid and bad["file"] == str(ref.folder) and "missing slice" in bad["reason"]
    listed = [u for s in SPLITS for u in json.loads((tmp_path / "out" / "splits.json").read_text())[s]]
    assert ref.series_uid not in listed and len(listed) == PATIENTS - 1


def test_patient_split_follows_the_models_genesis_shares():
    patients = [f"LIDC-IDRI-{n:04d}" for n in range(1, 1011)]
    splits = split_patients(patients, [510, 100, 408], 0)
    assert [len(splits[s]) for s in SPLITS] == [506, 99, 405]
    assert splits == split_patients(list(reversed(patients)), [510, 100, 408], 0)
    assert [len(v) for v in split_patients(patients[:3], [510, 100, 408], 0).values()] == [1, 1, 1]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_writer_is_deterministic_and_refuses_a_real_copy(raw, tmp_path):
    again = write_lidc(tmp_path / "again", PATIENTS, IMAGE_SIZE, SEED)
    assert _digest(again) == _digest(raw)
    write_lidc(again, PATIENTS, IMAGE_SIZE, SEED)  # its own set is replaced
    assert _digest(again) == _digest(raw)
    real = tmp_path / "real"
    (real / "LIDC-IDRI" / "LIDC-IDRI-0001").mkdir(parents=True)
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_lidc(real, 1, IMAGE_SIZE, SEED)


def test_a_flipped_orientation_moves_nodules_with_the_world(raw, plans, tmp_path):
    """ImageOrientationPatient (-1, 0, 0, 0, -1, 0): the same pixels and reads now lie at (-x, -y, z)."""
    root = Path(shutil.copytree(raw, tmp_path / "raw"))
    ref = first(root)[1]
    for path in ref.folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        _rewrite(path, ImageOrientationPatient=[-1, 0, 0, 0, -1, 0], ImagePositionPatient=[-x, -y, z])
    series = read_series(ref.folder)
    assert np.allclose(series.geometry.direction, np.diag([-1.0, -1.0, 1.0]))
    plan = plans[ref.series_uid]
    mirrored = {(-n.centre[0], -n.centre[1], n.centre[2]) for n in plan.nodules}
    for nodule in nodules_of(read_lidc(root).series[ref.series_uid], series, 5.0, 0.5):
        if not nodule.small:
            true = min(mirrored, key=lambda c: np.linalg.norm(np.subtract(c, nodule.centre_world)))
            assert np.all(np.abs(nodule.centre_world - true) <= 0.25 * np.asarray(series.geometry.spacing))
    out = tmp_path / "out"
    prepare_lidc(root, out, config())
    plans = {**plans, ref.series_uid: replace(plan, nodules=tuple(
        replace(n, centre=(-n.centre[0], -n.centre[1], n.centre[2])) for n in plan.nodules))}
    for split in SPLITS:
        _check_centres(read(out / f"{split}.h5"), plans, (1.0, 1.0, 1.0))

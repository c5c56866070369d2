"""`dira prepare luna16` on a small synthetic set: Models Genesis cubes and candidate crops, split by subset.

Ten scans, one per subset, 64 px in plane; crops of (16, 32, 32) voxels so that borders and the tissue rule
both bite (the synthetic thorax fills most of a 64-px volume with tissue).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from dira.cli import main
from dira.config import deep_merge, validate
from dira.data.cache import SplitCache, VoxelGrid
from dira.data.prepare import prepare_dataset
from dira.data.prepare.luna16 import tissue_share
from dira.data.sources.luna16 import locate, read_luna16, read_scan_geometry
from dira.data.synthetic.luna16 import IDENTITY, write_luna16
from dira.data.volumes.geometry import array_index
from dira.errors import InputError
from dira.io import write_text

SCANS, IMAGE_SIZE, SEED = 10, 64, 7
HU_WINDOW = (-1000.0, 1000.0)
SETTINGS = {
    "prepare": {"workers": 1, "on_bad_sample": "error"},
    "datasets": {"luna16": {
        "crop_shape": [16, 32, 32], "hu_window": list(HU_WINDOW),
        "cubes": {"crops_per_scan": 3, "tries_per_crop": 20, "border": [100, 8, 8], "tissue_hu": -150,
                  "tissue_lookahead": 3, "max_tissue_fraction": 0.4, "seed": 1},
        "candidates": {"negatives_per_scan": 6, "seed": 2},
    }},
}
CUBE_FILES = ("pretrain_train", "pretrain_val")
FPR_FILES = ("fpr_train", "fpr_val", "fpr_test")


def config(**luna) -> dict:
    """The schema's defaults under SETTINGS and ``luna`` (``datasets.luna16`` keys), as the CLI's --config gives."""
    return validate(deep_merge(SETTINGS, {"datasets": {"luna16": luna}}))


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_luna16(tmp_path_factory.mktemp("luna") / "raw", count=SCANS, image_size=IMAGE_SIZE, seed=SEED)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset("luna16", raw, out, config())
    return out


def read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in f}
        data["attrs"] = dict(f.attrs)
    return data


def hu(stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float32) * (HU_WINDOW[1] - HU_WINDOW[0]) + HU_WINDOW[0]


def test_every_split_cache_is_written_with_its_layout(prepared, raw):
    index = read_luna16(raw)
    splits = json.loads((prepared / "splits.json").read_text())
    for name in (*CUBE_FILES, *FPR_FILES):
        data = read(prepared / f"{name}.h5")
        assert data["images"].shape[1:] == (16, 32, 32) and data["images"].dtype == np.float16, name
        assert data["attrs"]["axes"] == "zyx" and data["attrs"]["split"] == name
        assert np.isnan(data["attrs"]["spacing_mm"]).all() and data["attrs"]["spacing_field"] == "spacing_zyx"
        assert json.loads(data["attrs"]["intensity"])["window"] == list(HU_WINDOW)
        ids = [s.decode() for s in data["source_ids"]]
        assert ids == splits[name]
        for row, source in enumerate(data["source_index"]):
            scan = index.scans[ids[source]]
            assert data["ids"][row].decode().startswith(scan.seriesuid + "/")
            assert np.allclose(data["spacing_zyx"][row], read_scan_geometry(scan).spacing[::-1])
        assert data["images"].min() >= 0 and data["images"].max() <= 1
    subsets = {name: {index.scans[u].subset for u in splits[name]} for name in (*CUBE_FILES, *FPR_FILES)}
    assert subsets["pretrain_train"] == subsets["fpr_train"] == {0, 1, 2, 3, 4}
    assert subsets["pretrain_val"] == subsets["fpr_val"] == {5, 6} and subsets["fpr_test"] == {7, 8, 9}
    assert (prepared / "bad_samples.csv").read_text() == "file,id,reason\n"


def test_cubes_obey_the_border_and_tissue_rules(prepared, raw):
    index = read_luna16(raw)
    cubes = SETTINGS["datasets"]["luna16"]["cubes"]
    total = 0
    for name in CUBE_FILES:
        data = read(prepared / f"{name}.h5")
        ids = [s.decode() for s in data["source_ids"]]
        counts = np.bincount(data["source_index"], minlength=len(ids))
        assert counts.max() <= cubes["crops_per_scan"]
        for row, image in enumerate(data["images"]):
            shape = read_scan_geometry(index.scans[ids[data["source_index"][row]]]).array_shape
            border = data["border_zyx"][row]
            # the z border (100) does not fit a <= 80-slice volume: the largest that does is used and recorded
            assert border[0] == (shape[0] - 16 - 2) // 2 and border[1] == border[2] == 8
            start = data["centres_zyx"][row] - (np.array([16, 32, 32]) - 1) / 2
            assert np.allclose(start, np.rint(start))
            assert (start >= border).all() and (start + np.array([16 + 2, 32, 32]) <= np.asarray(shape) - border).all()
            # the voxel share is at most the look-ahead share the rule tests
            assert tissue_share(hu(image), cubes["tissue_hu"], 1) <= cubes["max_tissue_fraction"]
        total += len(data["images"])
    assert total > 0


def test_the_tissue_rule_rejects_crops(prepared, raw, tmp_path):
    """A stricter rule keeps fewer cubes, each within it: the rule really filters."""
    prepare_dataset("luna16", raw, tmp_path, config(cubes={"max_tissue_fraction": 0.3, "tries_per_crop": 5}))
    for name in CUBE_FILES:
        strict, loose = read(tmp_path / f"{name}.h5")["images"], read(prepared / f"{name}.h5")["images"]
        assert len(strict) < len(loose)
        assert all(tissue_share(hu(cube), -150, 1) <= 0.3 for cube in strict)


def blob_centre(crop_hu: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (z, y, x) of the connected voxels above -400 HU holding the voxel nearest
    ``point`` (crop coordinates)."""
    centre = tuple(np.rint(point).astype(int))
    labels, _ = ndimage.label(crop_hu > -400)
    assert labels[centre] > 0, f"no blob at voxel {centre} of the crop"
    region = ndimage.binary_dilation(labels == labels[centre], iterations=1)
    weights = np.where(region, np.clip(crop_hu.astype(np.float64) + 850, 0, None), 0)
    zyx = np.stack(np.nonzero(weights), axis=1)
    return (zyx * weights[weights > 0][:, None]).sum(axis=0) / weights.sum()


def test_candidate_crops_are_centred_on_their_points(prepared, raw):
    index = read_luna16(raw)
    centre = (np.array([16, 32, 32]) - 1) / 2
    checked = {"flipped": 0, "unflipped": 0}
    for name in FPR_FILES:
        data = read(prepared / f"{name}.h5")
        ids = [s.decode() for s in data["source_ids"]]
        for row in range(len(data["images"])):
            uid = ids[data["source_index"][row]]
            points = index.scan_candidates(uid)
            at = int(np.flatnonzero(points.line == data["csv_line"][row])[0])
            assert data["labels"][row] == points.value[at]
            geometry = read_scan_geometry(index.scans[uid])
            expected = array_index(locate(points, geometry, uid))[at]
            assert np.abs(data["centres_zyx"][row] - expected).max() <= 0.5
            assert np.abs(data["centres_world"][row] - points.world[at]).max() <= 0.5 * max(geometry.spacing)
            if data["labels"][row] == 1:  # the nodule itself sits at the crop's centre
                found = blob_centre(hu(data["images"][row]), expected - data["centres_zyx"][row] + centre)
                assert np.abs(found - centre).max() <= 0.5 + 0.25, (uid, found)
                checked["unflipped" if geometry.direction == IDENTITY else "flipped"] += 1
    assert checked["flipped"] > 0 and checked["unflipped"] > 0


def test_negatives_are_drawn_and_positives_all_kept(prepared, raw):
    index = read_luna16(raw)
    rows = {}
    for name in FPR_FILES:
        data = read(prepared / f"{name}.h5")
        ids = [s.decode() for s in data["source_ids"]]
        for source, label in zip(data["source_index"], data["labels"], strict=True):
            rows.setdefault(ids[source], []).append(int(label))
    assert set(rows) == set(index.scans)
    for uid, labels in rows.items():
        values = index.scan_candidates(uid).value
        assert labels.count(1) == int((values == 1).sum())
        assert labels.count(0) == min(6, int((values == 0).sum()))


def test_crops_outside_the_volume_are_padded_and_flagged(raw, tmp_path):
    prepare_dataset("luna16", raw, tmp_path, config(crop_shape=[16, 96, 96]))  # wider than the 64-px volumes
    data = read(tmp_path / "fpr_train.h5")
    assert data["padded"].all()
    assert (data["images"][:, :, 0, 0] == 0).all()  # the window's lower value, -1000 HU


def test_the_same_settings_give_the_same_arrays(prepared, raw, tmp_path):
    prepare_dataset("luna16", raw, tmp_path, config())
    for name in (*CUBE_FILES, *FPR_FILES):
        a, b = read(prepared / f"{name}.h5"), read(tmp_path / f"{name}.h5")
        for key in ("images", "ids", "centres_zyx", "source_index"):
            assert np.array_equal(a[key], b[key]), (name, key)


def test_uint8_storage_and_resampling(raw, tmp_path):
    prepare_dataset("luna16", raw, tmp_path, config(dtype="uint8", spacing=[1.0, 1.0, 2.0]))
    data = read(tmp_path / "fpr_val.h5")
    assert data["images"].dtype == np.uint8 and data["attrs"]["spacing_mm"].tolist() == [2.0, 1.0, 1.0]
    assert "spacing_field" not in data["attrs"] and np.allclose(data["spacing_zyx"], [2.0, 1.0, 1.0])


def test_cli_synth_and_prepare(tmp_path):
    settings = tmp_path / "settings.yaml"
    write_text(settings, json.dumps(SETTINGS))
    assert main(["synth", "luna16", "--out", str(tmp_path / "raw"), "--count", "10", "--image-size", "64",
                 "--seed", "1"]) == 0
    assert main(["prepare", "luna16", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--config", str(settings)]) == 0
    assert (tmp_path / "out" / "fpr_test.h5").is_file() and (tmp_path / "out" / "pretrain_val.h5").is_file()


def _truncate_one(root: Path) -> Path:
    raw = sorted((root / "subset5").glob("*.raw"))[0]
    raw.write_bytes(raw.read_bytes()[:1000])
    return raw


def test_a_truncated_scan_is_skipped_and_listed(raw, tmp_path):
    root = Path(shutil.copytree(raw, tmp_path / "raw"))
    broken = _truncate_one(root)
    settings = config()
    settings["prepare"]["on_bad_sample"] = "skip"
    prepare_dataset("luna16", root, tmp_path / "out", settings)
    listed = (tmp_path / "out" / "bad_samples.csv").read_text().splitlines()
    assert len(listed) == 2 and listed[1].startswith(f"{broken.with_suffix('.mhd')},{broken.stem},")
    splits = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert broken.stem not in splits["pretrain_val"] and broken.stem not in splits["fpr_val"]
    assert len(splits["fpr_val"]) == 1


def test_a_truncated_scan_stops_the_run_naming_it(raw, tmp_path):
    root = Path(shutil.copytree(raw, tmp_path / "raw"))
    broken = _truncate_one(root)
    with pytest.raises(InputError, match=str(broken)):
        prepare_dataset("luna16", root, tmp_path / "out", config())
    assert not list((tmp_path / "out").glob("*.h5"))


def test_split_cache_reads_a_native_spacing_grid(prepared):
    grid = SplitCache(prepared / "fpr_train.h5").grid
    assert grid.axes == "zyx" and grid.spacing_field == "spacing_zyx" and np.isnan(grid.spacing_mm).all()
    with pytest.raises(ValueError, match="spacing_mm"):  # NaN spacing only with a field that holds it
        VoxelGrid("zyx", grid.spacing_mm, grid.intensity).check(3, "cache")


def test_an_empty_hu_window_is_refused(raw, tmp_path):
    with pytest.raises(InputError, match="hu_window"):
        prepare_dataset("luna16", raw, tmp_path, config(hu_window=[500, -500]))

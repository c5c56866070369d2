"""`dira discover` end to end on a small synthetic LUNA16 prepared by `dira prepare luna16`, and its bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dira.cli import main
from dira.config import load_config
from dira.data.cache import SplitCache
from dira.data.synthetic.luna16 import write_luna16
from dira.models.unet3d import UNet3D, load_released
from dira.stages import select, stage_keys

CLASSES, TRAIN, VAL = 3, 5, 2  # ten scans, one per subset: 5 training (0-4) and 2 validation (5-6) scans
CONFIG = {
    "device": "cpu", "threads": 1, "prepare": {"workers": 1},
    "model3d": {"base_width": 2},
    "datasets": {"luna16": {"crop_shape": [8, 16, 16],
                            "cubes": {"crops_per_scan": 2, "border": [2, 4, 4], "max_tissue_fraction": 0.6},
                            "candidates": {"negatives_per_scan": 2}}},
    "discovery": {"autoencoder": {"volume_shape": [16, 32, 32], "epochs": 1, "batch_size": 5},
                  "classes": CLASSES, "neighbours_train": TRAIN, "neighbours_val": VAL},
}
OUTPUTS = ("train.h5", "val.h5", "autoencoder.pt", "discovery.json")


def config(**discovery) -> str:
    return json.dumps({**CONFIG, "discovery": {**CONFIG["discovery"], **discovery}})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("luna")
    raw = write_luna16(base / "raw", count=10, image_size=48, seed=3)
    assert main(["prepare", "luna16", "--root", str(raw), "--out", str(base / "prep"), "--config", config()]) == 0
    return {"raw": raw, "splits": base / "prep" / "splits.json"}


@pytest.fixture(scope="module")
def words(prepared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("words")
    argv = ["discover", "--luna16", str(prepared["raw"]), "--splits", str(prepared["splits"]), "--out", str(out)]
    assert main([*argv, "--config", config()]) == 0
    return out


def discover(prepared: dict[str, Path], out: Path, *options: str, splits: Path | None = None) -> int:
    return main(["discover", "--luna16", str(prepared["raw"]), "--splits", str(splits or prepared["splits"]),
                 "--out", str(out), *options])


def test_discover_writes_every_output(prepared, words):
    assert sorted(p.name for p in words.iterdir()) == sorted(OUTPUTS)
    train, val = SplitCache(words / "train.h5"), SplitCache(words / "val.h5")
    assert len(train) == CLASSES * TRAIN * 3 and len(val) == CLASSES * VAL
    cubes = SplitCache(prepared["splits"].parent / "pretrain_train.h5")
    assert train.shape == cubes.shape == (8, 16, 16) and train.dtype == cubes.dtype
    for key in ("axes", "intensity", "spacing_field", "dataset", "source"):
        assert train.attrs[key] == cubes.attrs[key], key
    images = train.images()
    assert images.min() >= 0 and images.max() <= 1
    summary = json.loads((words / "discovery.json").read_text())
    listed = json.loads(prepared["splits"].read_text())
    assert {w["reference"] for w in summary["classes"]} <= set(listed["pretrain_train"])
    assert all(set(w["val"]) <= set(listed["pretrain_val"]) for w in summary["classes"])
    assert summary["patients"] == {"train": TRAIN, "val": VAL}
    assert set(train.array("source_ids")) == set(listed["pretrain_train"])
    load_released(UNet3D(1, 1, base_width=2, batch_stats_in_eval=True), words / "autoencoder.pt", skip_heads=False)


def test_the_workflow_s_settings_slice_gives_the_same_words(prepared, words, tmp_path):
    """--settings holds exactly stage_keys('discover'): discovery reads nothing it does not declare."""
    settings = select(load_config([config()]), stage_keys("discover"))
    assert discover(prepared, tmp_path, "--settings", json.dumps(settings)) == 0
    first, second = SplitCache(words / "train.h5"), SplitCache(tmp_path / "train.h5")
    assert list(first.ids) == list(second.ids) and np.array_equal(first.images(), second.images())


def test_a_settings_slice_without_a_key_is_refused(prepared, tmp_path, capsys):
    settings = select(load_config([config()]), stage_keys("discover"))
    del settings["discovery"]["classes"]
    assert discover(prepared, tmp_path / "out", "--settings", json.dumps(settings)) == 2
    assert "discovery.classes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"autoencoder": {"volume_shape": [12, 32, 32], "epochs": 1, "batch_size": 5}}, "volume_shape"),
    ({"multi_resolution_scale": [1.2, 1.0]}, "multi_resolution_scale"),
    ({"classes": 6}, "discovery.classes = 6"),
    ({"neighbours_val": 3}, "neighbours_val = 3"),
])
def test_bad_settings_name_the_key(prepared, tmp_path, capsys, change, message):
    assert discover(prepared, tmp_path / "out", "--config", config(**change)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _splits(tmp_path: Path, prepared: dict[str, Path], edit) -> Path:
    listing = json.loads(prepared["splits"].read_text())
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(edit(listing)) if callable(edit) else edit)
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: {**s, "pretrain_train": [*s["pretrain_train"], "1.2.3"]}, "no scan under"),
    (lambda s: {**s, "pretrain_val": [*s["pretrain_val"], s["pretrain_train"][0]]}, "in both"),
    (lambda s: {k: v for k, v in s.items() if k != "pretrain_val"}, "needs 'pretrain_val'"),
    (lambda s: {**s, "pretrain_train": []}, "is empty"),
    ("{not json", "not valid JSON"),
])
def test_bad_splits_files_are_named(prepared, tmp_path, capsys, edit, message):
    splits = _splits(tmp_path, prepared, edit)
    assert discover(prepared, tmp_path / "out", "--config", config(), splits=splits) == 2
    err = capsys.readouterr().err
    assert str(splits) in err and message in err


def test_a_missing_splits_file_or_root_is_named(prepared, tmp_path, capsys):
    assert discover(prepared, tmp_path / "out", "--config", config(), splits=tmp_path / "none.json") == 2
    assert "none.json: splits file not found" in capsys.readouterr().err
    argv = ["discover", "--luna16", str(tmp_path / "nowhere"), "--splits", str(prepared["splits"]),
            "--out", str(tmp_path / "out"), "--config", config()]
    assert main(argv) == 2 and "nowhere: LUNA16 folder not found" in capsys.readouterr().err


def test_a_failed_run_leaves_earlier_outputs_as_they_were(prepared, words, tmp_path):
    out = Path(shutil.copytree(words, tmp_path / "out"))
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    assert discover(prepared, out, "--config", config(classes=6)) == 2
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temporary file left behind

"""`dira prepare luna16 --shard K/N` then `dira gather`: the same caches one job writes, whatever N.

The settings are test_luna16_prepare's (ten scans, one per subset, small crops); a bad scan under 'skip' checks
that bad_samples.csv and splits.json gather too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_luna16_prepare import CUBE_FILES, FPR_FILES, SCANS, config, raw  # noqa: F401 (raw: the shared raw-set fixture)

from dira.cli import main
from dira.data.prepare import gather_dataset, prepare_dataset
from dira.data.prepare.shards import Shard
from dira.errors import InputError

FILES = (*CUBE_FILES, *FPR_FILES)


def arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f}


def attrs(path: Path) -> dict[str, str]:
    """Every attribute but the provenance's creation time, which differs between any two runs."""
    with h5py.File(path, "r") as f:
        out = {key: str(value) for key, value in f.attrs.items() if key != "provenance"}
        provenance = json.loads(f.attrs["provenance"])
    provenance.pop("created")
    return {**out, "provenance": json.dumps(provenance, sort_keys=True)}


@pytest.fixture(scope="module")
def damaged(raw, tmp_path_factory) -> Path:  # noqa: F811 (the imported fixture)
    """The raw set with one scan's .raw truncated, to be skipped and reported."""
    copy = Path(shutil.copytree(raw, tmp_path_factory.mktemp("damaged") / "raw"))
    victim = sorted(copy.glob("subset3/*.raw"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    return copy


@pytest.fixture(scope="module")
def whole(damaged, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    prepare_dataset("luna16", damaged, out, config_skip())
    return out


def config_skip() -> dict:
    settings = config()
    settings["prepare"]["on_bad_sample"] = "skip"
    return settings


@pytest.mark.parametrize("count", [1, 3, SCANS + 2])  # one shard, several, more shards than scans (empty ones)
def test_gathered_shards_equal_one_job(whole, damaged, tmp_path, count):
    shards = [tmp_path / f"shard{k}" for k in range(count)]
    for k, folder in enumerate(shards):
        prepare_dataset("luna16", damaged, folder, config_skip(), shard=Shard(k, count))
    gather_dataset("luna16", shards, tmp_path / "gathered")
    for name in FILES:
        ours, theirs = arrays(tmp_path / "gathered" / f"{name}.h5"), arrays(whole / f"{name}.h5")
        assert ours.keys() == theirs.keys(), name
        for key in ours:
            assert np.array_equal(ours[key], theirs[key]), (name, key)
        assert attrs(tmp_path / "gathered" / f"{name}.h5") == attrs(whole / f"{name}.h5"), name
    for file in ("splits.json", "bad_samples.csv"):
        assert (tmp_path / "gathered" / file).read_text() == (whole / file).read_text(), file
    assert len((whole / "bad_samples.csv").read_text().splitlines()) == 2  # header and the truncated scan


def test_shards_cover_every_scan_once():
    items = list(range(10))
    for count in (1, 3, 4, 12):
        blocks = [Shard(k, count).take(items) for k in range(count)]
        assert [i for block in blocks for i in block] == items


def test_gather_refuses_shards_prepared_with_other_settings(damaged, tmp_path):
    prepare_dataset("luna16", damaged, tmp_path / "a", config_skip(), shard=Shard(0, 2))
    other = config_skip()
    other["datasets"]["luna16"]["crop_shape"] = [8, 16, 16]
    prepare_dataset("luna16", damaged, tmp_path / "b", other, shard=Shard(1, 2))
    with pytest.raises(InputError, match="differ"):
        gather_dataset("luna16", [tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert not (tmp_path / "out" / "pretrain_train.h5").exists()
    with pytest.raises(InputError, match="missing"):
        gather_dataset("luna16", [tmp_path / "a", tmp_path / "nowhere"], tmp_path / "out")


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "a/b"])
def test_a_bad_shard_is_named(text):
    with pytest.raises(InputError, match="K/N"):
        Shard.parse(text)


def test_a_dataset_prepared_in_one_job_takes_no_shard(tmp_path, capsys):
    assert main(["prepare", "montgomery", "--root", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--shard", "0/2"]) == 2
    assert "montgomery is prepared in one job; --shard applies to luna16" in capsys.readouterr().err

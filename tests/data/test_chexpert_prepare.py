"""`prepare chexpert`: raw CheXpert -> train/val/test caches with label codes, or an error with old caches kept."""

from __future__ import annotations

import csv
import hashlib
import json

import h5py
import numpy as np
import pytest

from dira.cli import main
from dira.data.cache import SplitCache
from dira.data.prepare import prepare_dataset
from dira.data.sources.chexpert import CHEXPERT_LABELS, read_chexpert
from dira.errors import InputError

SPLITS = ("train", "val", "test")


def config(cache_size: int, on_bad_sample: str = "error", **chexpert) -> dict:
    return {"prepare": {"workers": 1, "on_bad_sample": on_bad_sample},
            "datasets": {"chexpert": {"cache_size": cache_size, **chexpert}}}


@pytest.fixture(scope="module")
def caches(chexpert_caches):
    opened = {split: SplitCache(chexpert_caches / f"{split}.h5") for split in SPLITS}
    yield opened
    for cache in opened.values():
        cache.close()


def test_caches_hold_every_listed_image_once_with_its_codes(caches, chexpert_root, chexpert_spec):
    index = read_chexpert(chexpert_root)
    records = {i.id: i for i in index.train + index.test}
    ids = {split: list(caches[split].ids) for split in SPLITS}
    assert sorted(ids["train"] + ids["val"]) == sorted(i.id for i in index.train)
    assert ids["test"] == [i.id for i in index.test]  # test = valid.csv, in its order
    for split, cache in caches.items():
        n, size = len(cache), chexpert_spec.cache_size
        assert cache.images().shape == (n, size, size) and cache.images().dtype == np.uint8
        assert cache.label_names == list(CHEXPERT_LABELS)
        labels, patients = cache.array("labels"), cache.array("patients")
        assert labels.shape == (n, 14) and labels.dtype == np.int8 and patients.dtype == np.int64
        for row, image_id in enumerate(ids[split]):
            assert np.array_equal(labels[row], records[image_id].codes)
            assert patients[row] == records[image_id].patient
        assert np.all(cache.array("original_size").min(axis=1) == chexpert_spec.jpeg_size)
        assert cache.images().reshape(n, -1).std(axis=1).min() > 10
    assert set(np.unique(caches["train"].array("labels"))) == {1, 0, -1, -2}
    assert set(np.unique(caches["test"].array("labels"))) == {0, 1}


def test_validation_holds_out_a_tenth_of_the_training_patients(caches, chexpert_spec):
    train, val = set(caches["train"].array("patients")), set(caches["val"].array("patients"))
    test = set(caches["test"].array("patients"))
    assert not train & val and not (train | val) & test
    assert len(train | val) == chexpert_spec.patients and len(val) == round(0.1 * chexpert_spec.patients)


def test_codes_and_provenance_are_recorded(caches, chexpert_root, chexpert_spec):
    for split, cache in caches.items():
        attrs = cache.attrs
        assert (attrs["dataset"], attrs["split"], attrs["source"]) == ("chexpert", split, "synthetic")
        codes = {"positive": 1, "negative": 0, "uncertain": -1, "blank": -2}
        assert attrs["label_codes"] == codes
        assert json.loads(cache.file["labels"].attrs["label_codes"]) == codes
        manifest = attrs["manifest"]
        for name in ("train.csv", "valid.csv"):
            assert manifest["files"][name]["sha256"] == hashlib.sha256((chexpert_root / name).read_bytes()).hexdigest()
        assert manifest["images"] == {s: len(c) for s, c in caches.items()}
        labels = caches["train"].array("labels")
        assert manifest["uncertain_cells"]["train"] == (labels == -1).sum() > 0
        edema = labels[:, CHEXPERT_LABELS.index("Edema")]
        assert manifest["label_states"]["train"]["Edema"] == {s: int((edema == c).sum()) for s, c in codes.items()}
        assert manifest["synthetic"]["seed"] == chexpert_spec.seed
        assert attrs["provenance"]["config"]["datasets"]["chexpert"]["evaluation"] == "valid"


def test_evaluation_test_and_frontal_only(chexpert_root, tmp_path):
    prepare_dataset("chexpert", chexpert_root, tmp_path, config(32, evaluation="test", frontal_only=True))
    with h5py.File(tmp_path / "test.h5") as test, h5py.File(tmp_path / "train.h5") as train:
        tested = list(test["ids"].asstr()[()])
        assert tested == [i.id for i in read_chexpert(chexpert_root, "test").test if i.frontal]
        assert all(i.startswith("test/") for i in tested)
        assert all(i.endswith("_frontal.jpg") for i in [*tested, *train["ids"].asstr()[()]])


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert main(["synth", "chexpert", "--out", str(tmp_path / "raw"), "--count", "10", "--image-size", "48"]) == 0
    root = tmp_path / "raw" / "CheXpert-v1.0-small"
    assert main(["prepare", "chexpert", "--root", str(root), "--out", str(tmp_path / "h5"),
                 "--config", '{"prepare": {"workers": 2}, "datasets": {"chexpert": {"cache_size": 32}}}']) == 0
    assert "chexpert (synthetic, test = valid.csv): train" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "h5").iterdir()) == ["bad_samples.csv", "test.h5", "train.h5", "val.h5"]


# ---- failures ----------------------------------------------------------------------------------------------

def wrong_header(root):
    (root / "train.csv").write_text((root / "train.csv").read_text().replace("AP/PA", "AP-PA", 1))
    return root / "train.csv", "unexpected header"


def unknown_cell(root):
    text = (root / "valid.csv").read_text()
    (root / "valid.csv").write_text(text[:text.rindex(",") + 1] + "yes\n")
    return root / "valid.csv", f"line {text.count(chr(10))}, Support Devices: unknown label cell 'yes'"


def missing_image(root):
    victim = read_chexpert(root).train[-1]
    victim.path.unlink()
    return victim.path, f"listed image not found \\({root / 'train.csv'}, line {victim.line}\\)"


def corrupt_jpeg(root):
    victim = read_chexpert(root).test[0].path
    victim.write_bytes(victim.read_bytes()[:200])
    return victim, "unreadable image"


@pytest.mark.parametrize("damage", [wrong_header, unknown_cell, missing_image, corrupt_jpeg])
def test_bad_input_names_the_file_and_leaves_old_caches_alone(damage, chexpert_copy, tmp_path):
    out = tmp_path / "h5"
    out.mkdir()
    old = {name: f"an earlier {name}".encode() for name in ("train.h5", "val.h5", "test.h5", "bad_samples.csv")}
    for name, content in old.items():
        (out / name).write_bytes(content)
    culprit, problem = damage(chexpert_copy)
    with pytest.raises(InputError, match=rf"{str(culprit).replace('.', '[.]')}.*{problem}"):
        prepare_dataset("chexpert", chexpert_copy, out, config(32))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


@pytest.mark.parametrize("damage", [missing_image, corrupt_jpeg])
def test_skip_leaves_out_bad_images_and_lists_them(damage, chexpert_root, chexpert_copy, tmp_path):
    culprit, _ = damage(chexpert_copy)
    prepare_dataset("chexpert", chexpert_copy, tmp_path, config(32, on_bad_sample="skip"))
    victim = str(culprit.relative_to(chexpert_copy))
    index = read_chexpert(chexpert_root)  # the undamaged original
    cached = set()
    for split in SPLITS:
        with h5py.File(tmp_path / f"{split}.h5") as f:
            cached |= set(f["ids"].asstr()[()])
            assert f["labels"].dtype == np.int8
    assert cached == {i.id for i in index.train + index.test} - {victim}
    with (tmp_path / "bad_samples.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "id", "reason"] and len(rows) == 2
    assert rows[1][:2] == [str(culprit), victim] and str(culprit) in rows[1][2]
    assert list(tmp_path.glob(".*")) == []  # no staging folder left behind


def test_a_clean_run_replaces_an_earlier_bad_samples_list(chexpert_root, tmp_path):
    (tmp_path / "bad_samples.csv").write_text("file,id,reason\nx,y,z\n")
    prepare_dataset("chexpert", chexpert_root, tmp_path, config(32))
    assert (tmp_path / "bad_samples.csv").read_text() == "file,id,reason\n"

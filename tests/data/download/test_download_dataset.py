"""The catalog, check_layout and download_dataset end to end against a local server."""

from __future__ import annotations

import logging
import re

import pytest
from download_fixtures import md5, tar_bytes, tree, zip_bytes

import dira.data.download.dataset as dataset_module
from dira.data.download import BASE_URL_ENV, check_layout, download_dataset, load_catalog
from dira.errors import InputError

GATED = ("chexpert", "siim", "lidc", "lits", "brats", "pe")


def test_every_chestxray14_tarball_has_md5_size_and_static_url():
    files = load_catalog()["chestxray14"].files
    assert [f.name for f in files] == [f"images_{n:03d}.tar.gz" for n in range(1, 13)]
    assert [f.also_named for f in files] == [(f"images_{n:02d}.tar.gz",) for n in range(1, 13)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", f.md5) and f.size > 10**9 for f in files)
    assert all(re.fullmatch(r"https://nihcc\.box\.com/shared/static/[0-9a-z]{32}\.gz", f.url) for f in files)
    assert sum(f.size for f in files) == 45_079_862_784
    assert (files[0].md5, files[0].size) == ("fe8ed0a6961412fddcbb3603c11b3698", 2_008_470_987)


def test_luna16_and_montgomery_are_listed_without_checksums():
    catalog = load_catalog()
    luna = {f.name: f for f in catalog["luna16"].files}
    assert len(luna) == 16 and all(f.md5 is None for f in luna.values())
    assert luna["subset6.zip"].url == "https://zenodo.org/record/3723295/files/subset6.zip?download=1"
    assert luna["subset7.zip"].url == "https://zenodo.org/record/4121926/files/subset7.zip?download=1"
    (montgomery,) = catalog["montgomery"].files
    assert montgomery.md5 is None and montgomery.url.endswith("/NLM-MontgomeryCXRSet.zip")


def test_layouts_and_steps_of_every_set():
    catalog = load_catalog()
    assert catalog["chexpert"].layout == ("train.csv", "valid.csv")
    assert catalog["siim"].layout == ("train-rle.csv", "dicom-images-train")
    assert catalog["montgomery"].layout == ("CXR_png", "ManualMask")
    assert catalog["chestxray14"].layout == ("Data_Entry_2017_v2020.csv", "BBox_List_2017.csv",
                                             "train_val_list.txt", "test_list.txt")
    for name in GATED:
        assert catalog[name].access != "public" and not catalog[name].files and catalog[name].layout
        assert "http" in catalog[name].steps and "{root}" in catalog[name].steps


def test_check_layout_lists_missing_files_and_steps(tmp_path):
    with pytest.raises(InputError) as err:
        check_layout("chexpert", tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path}: CheXpert v1.0 (chexpert) is not in place: missing train.csv, valid.csv")
    assert "https://stanfordaimi.azurewebsites.net/datasets/8cbd9ed4-2eb9-4565-affc-111cf4f7ebe2" in message
    assert "{root}" not in message and f"{tmp_path} must be the folder that holds train.csv" in message


def test_check_layout_passes_when_present(tmp_path):
    (tmp_path / "train.csv").write_text("Path\n")
    (tmp_path / "valid.csv").write_text("Path\n")
    assert check_layout("chexpert", tmp_path) is None
    (tmp_path / "MontgomerySet" / "CXR_png").mkdir(parents=True)  # as the zip unpacks: the reader looks there too
    with pytest.raises(InputError, match=r"is not in place: missing MontgomerySet/ManualMask\n"):
        check_layout("montgomery", tmp_path)
    (tmp_path / "MontgomerySet" / "ManualMask").mkdir()
    assert check_layout("montgomery", tmp_path) is None


def test_check_layout_points_at_a_subfolder_that_has_it(tmp_path):
    (tmp_path / "CheXpert-v1.0-small").mkdir()
    for name in ("train.csv", "valid.csv"):
        (tmp_path / "CheXpert-v1.0-small" / name).write_text("Path\n")
    with pytest.raises(InputError, match=re.escape(f"Its layout is in {tmp_path / 'CheXpert-v1.0-small'}")):
        check_layout("chexpert", tmp_path)


def test_unknown_dataset_and_unknown_file(tmp_path):
    with pytest.raises(InputError, match="unknown dataset 'mnist'; known: chestxray14, chexpert"):
        check_layout("mnist", tmp_path)
    with pytest.raises(InputError, match=r"chestxray14: no file 'images_013\.tar\.gz' in the catalog; known: images_0"):
        download_dataset("chestxray14", tmp_path, files=["images_013.tar.gz"])


def test_gated_dataset_is_only_checked(tmp_path, server):
    with pytest.raises(InputError, match=r"(?s)missing train-rle\.csv, dicom-images-train.*kaggle"):
        download_dataset("siim", tmp_path, base_url=server.base)
    assert server.requests == []


def test_real_chestxray14_entry_checks_the_nih_md5(tmp_path, server):
    server.serve("/chestxray14/images_001.tar.gz", tar_bytes({"images/a.png": b"a"}))
    with pytest.raises(InputError, match="expected md5 fe8ed0a6961412fddcbb3603c11b3698 \\(2008470987 bytes\\)"):
        download_dataset("chestxray14", tmp_path, files=["images_001.tar.gz"], base_url=server.base, progress=False)
    assert [r.path for r in server.requests] == ["/chestxray14/images_001.tar.gz"]
    assert not (tmp_path / "images").exists()


def test_montgomery_from_a_mirror_named_in_the_environment(tmp_path, server, monkeypatch, caplog):
    png = b"\x89PNG fake"
    server.serve("/montgomery/NLM-MontgomeryCXRSet.zip", zip_bytes({
        "MontgomerySet/CXR_png/MCUCXR_0001_0.png": png, "MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png": png,
        "MontgomerySet/ManualMask/rightMask/MCUCXR_0001_0.png": png}))
    monkeypatch.setenv(BASE_URL_ENV, server.base + "/")
    with caplog.at_level(logging.WARNING, logger="dira.data.download"):
        download_dataset("montgomery", tmp_path, progress=False)
    assert (tmp_path / "MontgomerySet" / "ManualMask" / "rightMask" / "MCUCXR_0001_0.png").read_bytes() == png
    assert (tmp_path / "downloads" / "NLM-MontgomeryCXRSet.zip").is_file()
    assert [r.path for r in server.requests] == ["/montgomery/NLM-MontgomeryCXRSet.zip"]
    assert any("NLM-MontgomeryCXRSet.zip: UNVERIFIED" in r.getMessage() for r in caplog.records)


def _toy(server, files: dict[str, bytes], alias: str = "") -> dict:
    """A catalog of one public set 'toy' whose files point at the server (the URLs the catalog would name)."""
    rows = ["dataset,file,url,size,md5,also_named"]
    rows += [f"toy,{name},{server.url('/origin/' + name)},{len(data)},{md5(data)},{alias if i == 0 else ''}"
             for i, (name, data) in enumerate(files.items())]
    spec = "toy:\n  title: Toy\n  access: public\n  layout: [labels.csv, images]\n  steps: get it into {root}\n"
    return load_catalog(sources_csv="\n".join(rows) + "\n", datasets_yaml=spec)


TOY = {"images_001.tar.gz": tar_bytes({"images/a.png": b"aa"}), "images_002.tar.gz": tar_bytes({"images/b.png": b"b"}),
       "labels.csv": b"id,label\na,1\n"}


def test_download_unpack_and_no_second_time(tmp_path, server, monkeypatch):
    for name, data in TOY.items():
        server.serve(f"/origin/{name}", data)
    catalog = _toy(server, TOY)
    download_dataset("toy", tmp_path / "root", catalog=catalog, progress=False)
    root = tmp_path / "root"
    assert {k: v for k, v in tree(root).items() if not k.startswith("downloads")} == {
        "images": "<dir>", "images/a.png": b"aa", "images/b.png": b"b", "labels.csv": TOY["labels.csv"]}
    assert [r.path for r in server.requests] == [f"/origin/{name}" for name in TOY]
    calls = []
    monkeypatch.setattr(dataset_module, "safe_extract", lambda *a, **k: calls.append(a))
    download_dataset("toy", root, catalog=catalog, progress=False)
    assert len(server.requests) == 3 and calls == []  # neither downloaded nor unpacked again


def test_corrupted_archive_leaves_the_users_files(tmp_path, server):
    catalog = _toy(server, TOY)
    server.serve("/origin/images_002.tar.gz", tar_bytes({"images/b.png": b"evil"}))
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "images_001.tar.gz").write_bytes(TOY["images_001.tar.gz"])
    (root / "images").mkdir()
    (root / "images" / "a.png").write_bytes(b"aa")
    before = tree(root)
    with pytest.raises(InputError) as err:
        download_dataset("toy", root, catalog=catalog, files=["images_002.tar.gz"], progress=False)
    bad = md5(server.state.files["/origin/images_002.tar.gz"])
    assert f"{root / 'downloads' / 'images_002.tar.gz'}: checksum mismatch" in str(err.value)
    assert f"expected md5 {md5(TOY['images_002.tar.gz'])}" in str(err.value) and f"found md5 {bad}" in str(err.value)
    after = tree(root)
    assert after.pop(f"downloads/images_002.tar.gz.bad-{bad[:8]}") == server.state.files["/origin/images_002.tar.gz"]
    assert after == before


def test_file_downloaded_under_the_official_scripts_name_is_used(tmp_path, server):
    catalog = _toy(server, TOY, alias="images_01.tar.gz")
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "images_01.tar.gz").write_bytes(TOY["images_001.tar.gz"])
    download_dataset("toy", root, catalog=catalog, files=["images_01.tar.gz"], progress=False)
    assert server.requests == []
    assert (root / "images" / "a.png").read_bytes() == b"aa"


def test_extract_false_only_downloads(tmp_path, server):
    server.serve("/origin/images_001.tar.gz", TOY["images_001.tar.gz"])
    download_dataset("toy", tmp_path, catalog=_toy(server, TOY), files=["images_001.tar.gz"], extract=False,
                     progress=False)
    assert sorted(tree(tmp_path)) == ["downloads", "downloads/images_001.tar.gz"]

"""`dira locate`: a real dataset found (or downloaded over HTTP from a local mirror) and prepared from there."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py

from dira.cli import main
from dira.data.download import BASE_URL_ENV
from dira.data.synthetic.montgomery import write


def _montgomery_zip(tmp_path: Path) -> bytes:
    """The release archive's layout (MontgomerySet/...), filled with a small synthetic set in the real formats."""
    write(tmp_path / "release", count=10, image_size=64, seed=0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((tmp_path / "release").rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tmp_path / "release").as_posix())
    return buffer.getvalue()


def test_locate_downloads_montgomery_over_http_and_prepare_reads_it(tmp_path, server, monkeypatch):
    server.serve("/montgomery/NLM-MontgomeryCXRSet.zip", _montgomery_zip(tmp_path))
    monkeypatch.setenv(BASE_URL_ENV, server.base)
    root, marker = tmp_path / "data/raw/montgomery", tmp_path / "located/montgomery.json"

    assert main(["locate", "montgomery", "--root", str(root), "--out", str(marker), "--download"]) == 0
    located = json.loads(marker.read_text())
    assert located["downloaded"] is True and located["root"] == str(root.resolve())
    assert "MontgomerySet/CXR_png" in located["layout"]  # found where the archive unpacked it

    settings = '{"prepare": {"workers": 1}, "datasets": {"montgomery": {"cache_size": 32}}}'
    out = tmp_path / "h5"
    assert main(["prepare", "montgomery", "--root", str(root), "--out", str(out), "--config", settings]) == 0
    with h5py.File(out / "test.h5") as test:
        assert test["masks"].shape == (2, 32, 32)  # 20 % of the 10 downloaded images

    # a second locate finds everything in place: no second request
    assert main(["locate", "montgomery", "--root", str(root), "--out", str(marker), "--download"]) == 0
    assert len(server.requests) == 1


def test_locate_without_the_data_names_what_is_missing_and_writes_no_marker(tmp_path, capsys):
    marker = tmp_path / "located/siim.json"
    assert main(["locate", "siim", "--root", str(tmp_path / "siim"), "--out", str(marker)]) == 2
    error = capsys.readouterr().err
    assert "train-rle.csv" in error and "To obtain it" in error and not marker.exists()
    assert main(["locate", "siim", "--root", str(tmp_path), "--out", str(marker), "--download"]) == 2
    assert "cannot be downloaded by script" in capsys.readouterr().err


def test_a_file_only_this_configuration_needs_is_required(tmp_path, capsys):
    for name in ("train.csv", "valid.csv"):
        (tmp_path / name).write_text("Path\n")
    marker = tmp_path / "chexpert.json"
    assert main(["locate", "chexpert", "--root", str(tmp_path), "--out", str(marker), "--require",
                 "test_labels.csv"]) == 2
    assert "also needs test_labels.csv" in capsys.readouterr().err
    assert main(["locate", "chexpert", "--root", str(tmp_path), "--out", str(marker)]) == 0
    assert set(json.loads(marker.read_text())["layout"]) == {"train.csv", "valid.csv"}

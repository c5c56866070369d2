"""Checksum mismatches: an InputError naming the file and both checksums; nothing of the user's is lost."""

from __future__ import annotations

import re

import pytest
from download_fixtures import md5, payload

from dira.data.download import fetch, verify
from dira.errors import InputError

GOOD = payload(50_000, seed=1)
CORRUPT = GOOD[:20_000] + b"X" + GOOD[20_001:]  # same size, one byte changed


def test_corrupted_download_is_refused_and_kept_aside(server, tmp_path):
    url = server.serve("/files/images_002.tar.gz", CORRUPT)
    folder = tmp_path / "downloads"
    folder.mkdir()
    users_file = folder / "images_001.tar.gz"
    users_file.write_bytes(GOOD)
    dest = folder / "images_002.tar.gz"
    with pytest.raises(InputError) as err:
        fetch(url, dest, expected_size=len(GOOD), md5=md5(GOOD), progress=False)
    message = str(err.value)
    assert str(dest) in message
    assert f"expected md5 {md5(GOOD)}" in message and f"found md5 {md5(CORRUPT)}" in message
    aside = folder / f"images_002.tar.gz.bad-{md5(CORRUPT)[:8]}"
    assert str(aside) in message
    assert aside.read_bytes() == CORRUPT
    assert not dest.exists() and not (folder / "images_002.tar.gz.part").exists()
    assert users_file.read_bytes() == GOOD
    assert sorted(p.name for p in folder.iterdir()) == sorted([aside.name, users_file.name])


def test_existing_bad_file_is_moved_aside_never_deleted(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(CORRUPT)
    with pytest.raises(InputError, match=re.escape(f"{path}: checksum mismatch: expected md5 {md5(GOOD)}")):
        verify(path, md5=md5(GOOD))
    first = tmp_path / f"a.bin.bad-{md5(CORRUPT)[:8]}"
    assert first.read_bytes() == CORRUPT and not path.exists()
    path.write_bytes(CORRUPT)  # the same bad copy again: a second name, the first is not replaced
    with pytest.raises(InputError):
        verify(path, md5=md5(GOOD))
    assert first.read_bytes() == CORRUPT
    assert (tmp_path / f"{first.name}-1").read_bytes() == CORRUPT


def test_size_mismatch_names_sizes(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(GOOD[:100])
    with pytest.raises(InputError, match=rf"expected {len(GOOD)} bytes, found md5 {md5(GOOD[:100])} \(100 bytes\)"):
        verify(path, size=len(GOOD))


def test_good_file_verifies_and_stays(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(GOOD)
    assert verify(path, md5=md5(GOOD).upper(), size=len(GOOD)) == "verified"
    assert path.read_bytes() == GOOD

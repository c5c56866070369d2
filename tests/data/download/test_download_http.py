"""fetch() against a real local HTTP server: checksums, resuming, redirects, retries, Range quirks."""

from __future__ import annotations

import logging

import pytest
from download_fixtures import md5, payload

from dira.data.download import fetch
from dira.errors import InputError

DATA = payload(300_000)
FAST = {"backoff": 0.01, "progress": False}


def test_download_with_checksum(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    dest = tmp_path / "dl" / "a.bin"
    status = fetch(url, dest, expected_size=len(DATA), md5=md5(DATA), **FAST)
    assert status == "verified"
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "dl" / "a.bin.part").exists()
    assert [(r.path, r.range) for r in server.requests] == [("/files/a.bin", None)]


def test_resume_requests_only_the_rest(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    dest = tmp_path / "a.bin"
    half = len(DATA) // 2
    (tmp_path / "a.bin.part").write_bytes(DATA[:half])
    assert fetch(url, dest, expected_size=len(DATA), md5=md5(DATA), **FAST) == "verified"
    assert [r.range for r in server.requests] == [f"bytes={half}-"]
    assert dest.read_bytes() == DATA


def test_resume_follows_redirect_with_range(server, tmp_path):
    server.serve("/files/a.bin", DATA)
    server.state.redirects["/shared/static/hash.gz"] = "/files/a.bin"
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(DATA[:1000])
    fetch(server.url("/shared/static/hash.gz"), dest, md5=md5(DATA), **FAST)
    assert [(r.path, r.range) for r in server.requests] == [("/shared/static/hash.gz", "bytes=1000-"),
                                                            ("/files/a.bin", "bytes=1000-")]
    assert dest.read_bytes() == DATA


def test_dropped_connection_is_retried_from_where_it_stopped(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    server.state.drop_once["/files/a.bin"] = 123_456
    dest = tmp_path / "a.bin"
    assert fetch(url, dest, expected_size=len(DATA), md5=md5(DATA), **FAST) == "verified"
    assert [r.range for r in server.requests] == [None, "bytes=123456-"]
    assert dest.read_bytes() == DATA


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    server.state.ignore_range.add("/files/a.bin")
    (tmp_path / "a.bin.part").write_bytes(b"\0" * 5000)  # a wrong prefix: kept, it would spoil the file
    fetch(url, tmp_path / "a.bin", expected_size=len(DATA), md5=md5(DATA), **FAST)
    assert [r.range for r in server.requests] == ["bytes=5000-"]
    assert (tmp_path / "a.bin").read_bytes() == DATA


def test_416_on_a_complete_part_is_success(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    (tmp_path / "a.bin.part").write_bytes(DATA)
    assert fetch(url, tmp_path / "a.bin", md5=md5(DATA), **FAST) == "verified"
    assert [r.range for r in server.requests] == [f"bytes={len(DATA)}-"]
    assert (tmp_path / "a.bin").read_bytes() == DATA


def test_416_on_an_overlong_part_restarts(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    (tmp_path / "a.bin.part").write_bytes(DATA + b"junk")
    fetch(url, tmp_path / "a.bin", md5=md5(DATA), **FAST)
    assert [r.range for r in server.requests] == [f"bytes={len(DATA) + 4}-", None]
    assert (tmp_path / "a.bin").read_bytes() == DATA


def test_transient_errors_are_retried(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    server.state.errors["/files/a.bin"] = [503, 500]
    fetch(url, tmp_path / "a.bin", md5=md5(DATA), **FAST)
    assert len(server.requests) == 3
    assert (tmp_path / "a.bin").read_bytes() == DATA


def test_gives_up_after_retries(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    server.state.errors["/files/a.bin"] = [503] * 10
    with pytest.raises(InputError, match=r"a\.bin: download from .*/files/a\.bin failed 3 times.*HTTP 503"):
        fetch(url, tmp_path / "a.bin", retries=2, **FAST)
    assert len(server.requests) == 3
    assert not (tmp_path / "a.bin").exists()


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(InputError, match="HTTP 404"):
        fetch(server.url("/files/none.bin"), tmp_path / "none.bin", **FAST)
    assert len(server.requests) == 1


def test_present_complete_file_is_not_downloaded_again(server, tmp_path):
    url = server.serve("/files/a.bin", DATA)
    (tmp_path / "a.bin").write_bytes(DATA)
    assert fetch(url, tmp_path / "a.bin", expected_size=len(DATA), md5=md5(DATA), **FAST) == "verified"
    assert server.requests == []


def test_without_md5_the_file_is_reported_unverified(server, tmp_path, caplog):
    url = server.serve("/files/a.bin", DATA)
    with caplog.at_level(logging.WARNING, logger="dira.data.download"):
        assert fetch(url, tmp_path / "a.bin", expected_size=len(DATA), **FAST) == "size-checked"
        assert fetch(url, tmp_path / "b.bin", **FAST) == "unverified"
    messages = [r.getMessage() for r in caplog.records]
    assert any("a.bin: UNVERIFIED content: no md5 is published, only the size" in m for m in messages)
    assert any("b.bin: UNVERIFIED: neither md5 nor size" in m for m in messages)
    assert not any(" verified (md5" in m for m in messages)

"""safe_extract: malicious tar and zip archives are refused whole and leave the destination as it was."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from download_fixtures import tar_bytes, tree, zip_bytes

from dira.data.download import safe_extract
from dira.errors import InputError

OK = ("ok.txt", b"fine")  # a harmless member before the bad one: it must not reach dest either


def _file(name: str, data: bytes = b"x") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def _write_tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_file(OK[0], OK[1]), io.BytesIO(OK[1]))
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


@pytest.fixture
def dest(tmp_path):
    """A destination that already holds a file of the user's."""
    root = tmp_path / "work" / "root"
    root.mkdir(parents=True)
    (root / "keep.txt").write_bytes(b"the user's file")
    return root


def _assert_refused(archive: Path, dest: Path, member: str, match: str) -> None:
    before = tree(dest.parent)
    with pytest.raises(InputError, match=match) as err:
        safe_extract(archive, dest)
    assert str(archive) in str(err.value) and repr(member) in str(err.value)
    assert tree(dest.parent) == before  # dest unchanged, no staging folder left beside it
    assert not (dest.parent.parent / "evil.txt").exists() and not (dest.parent / "evil.txt").exists()


TAR_CASES = {
    "dotdot": ([_file("../evil.txt")], "../evil.txt", "'..'"),
    "dotdot-deep": ([_file("images/../../evil.txt")], "images/../../evil.txt", "'..'"),
    "absolute": ([_file("/tmp/dira-test-evil.txt")], "/tmp/dira-test-evil.txt", "absolute path"),
    "backslash": ([_file("..\\evil.txt")], "..\\evil.txt", "backslash"),
    "drive": ([_file("C:evil.txt")], "C:evil.txt", "Windows drive"),
    "symlink-out": ([_link("link", "../../evil.txt")], "link", "outside the destination"),
    "symlink-abs": ([_link("link", "/etc")], "link", "absolute"),
    "symlink-out-nested": ([_link("a/b/link", "../../../x")], "a/b/link", "outside the destination"),
    "symlink-through-symlink": ([_link("d/up", ".."), _link("s", "d/up/../evil.txt")], "s",
                                "through the symlink d/up"),
    "write-through-symlink": ([_link("l", "."), _file("l/evil.txt")], "l/evil.txt", "through the symlink l"),
    "write-over-symlink": ([_link("l", "ok.txt"), _file("l")], "l", "over an earlier symlink"),
    "hardlink-out": ([_link("h", "../evil.txt", tarfile.LNKTYPE)], "h", "'..'"),
    "hardlink-abs": ([_link("h", "/etc/passwd", tarfile.LNKTYPE)], "h", "absolute path"),
    "hardlink-unknown": ([_link("h", "missing.txt", tarfile.LNKTYPE)], "h", "not to an earlier regular file"),
    "fifo": ([_special("pipe", tarfile.FIFOTYPE)], "pipe", "device file, FIFO"),
    "chardev": ([_special("null", tarfile.CHRTYPE)], "null", "device file, FIFO"),
    "blockdev": ([_special("sda", tarfile.BLKTYPE)], "sda", "device file, FIFO"),
}


@pytest.mark.parametrize("case", TAR_CASES)
def test_malicious_tar_is_refused(case, tmp_path, dest):
    members, member, match = TAR_CASES[case]
    _assert_refused(_write_tar(tmp_path / "bad.tar.gz", members), dest, member, match)
    assert not Path("/tmp/dira-test-evil.txt").exists()


def test_symlink_chain_made_in_reverse_order_is_caught_after_unpacking(tmp_path, dest):
    """'s' is checked before 'd/up' is a symlink; only the unpacked tree shows that s leads outside."""
    archive = _write_tar(tmp_path / "bad.tar.gz", [_link("s", "d/up/../evil.txt"), _link("d/up", "..")])
    _assert_refused(archive, dest, "s", "symlink chain")


ZIP_CASES = {
    "dotdot": ("../evil.txt", "'..'"),
    "absolute": ("/tmp/dira-test-evil.txt", "absolute path"),
    "backslash-dotdot": ("..\\evil.txt", "backslash"),
    "drive-backslash": ("C:\\evil.txt", "Windows drive"),
    "drive-slash": ("C:/evil.txt", "Windows drive"),
}


@pytest.mark.parametrize("case", ZIP_CASES)
def test_malicious_zip_is_refused(case, tmp_path, dest):
    name, match = ZIP_CASES[case]
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zip_bytes({OK[0]: OK[1], name: b"evil"}))
    assert [i.filename for i in zipfile.ZipFile(archive).infolist()][1] == name  # zipfile kept the name as given
    _assert_refused(archive, dest, name, match)


@pytest.mark.parametrize(("kind", "content", "match"), [(stat.S_IFLNK, b"../../etc", "symlink to '../../etc'"),
                                                        (stat.S_IFIFO, b"", "device file, FIFO")])
def test_zip_symlinks_and_special_files_are_refused(kind, content, match, tmp_path, dest):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(OK[0], OK[1])
        info = zipfile.ZipInfo("thing")
        info.create_system, info.external_attr = 3, (kind | 0o777) << 16
        zf.writestr(info, content)
    _assert_refused(archive, dest, "thing", match)


GOOD = {"images/00000001_000.png": b"png-1", "images/00000002_000.png": b"png-2" * 100, "list.txt": b"a\nb\n"}


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar", ".zip"])
def test_good_archive_extracts(suffix, tmp_path, dest):
    archive = tmp_path / f"good{suffix}"
    archive.write_bytes(zip_bytes(GOOD) if suffix == ".zip" else tar_bytes(GOOD, "w" if suffix == ".tar" else "w:gz"))
    assert safe_extract(archive, dest) == ["images", "list.txt"]
    assert tree(dest) == {"images": "<dir>", **GOOD, "keep.txt": b"the user's file"}
    assert not [p for p in dest.parent.iterdir() if p.name != "root"]  # staging removed


def test_fresh_dest_gets_normal_permissions_and_inside_links_work(tmp_path):
    archive = tmp_path / "good.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_file("data/x.txt", b"xx"), io.BytesIO(b"xx"))
        tar.addfile(_link("latest", "data"))
        tar.addfile(_link("data/copy.txt", "data/x.txt", tarfile.LNKTYPE))
    dest = tmp_path / "new" / "root"
    safe_extract(archive, dest)
    assert (dest / "latest" / "x.txt").read_bytes() == b"xx" and (dest / "data" / "copy.txt").read_bytes() == b"xx"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~mask


def test_second_archive_merges_and_repeating_is_harmless(tmp_path, dest):
    first, second = tmp_path / "images_001.tar.gz", tmp_path / "images_002.tar.gz"
    first.write_bytes(tar_bytes({"images/a.png": b"a"}))
    second.write_bytes(tar_bytes({"images/b.png": b"bb"}))
    safe_extract(first, dest)
    safe_extract(second, dest)
    safe_extract(first, dest)
    assert tree(dest) == {"images": "<dir>", "images/a.png": b"a", "images/b.png": b"bb",
                          "keep.txt": b"the user's file"}


def test_conflicting_user_file_stops_the_archive(tmp_path, dest):
    archive = tmp_path / "good.tar.gz"
    archive.write_bytes(tar_bytes({"images/a.png": b"a", "keep.txt": b"another content"}))  # same size as the user's
    before = tree(dest.parent)
    with pytest.raises(InputError, match=r"good\.tar\.gz: .*keep\.txt already exists with other content"):
        safe_extract(archive, dest)
    assert tree(dest.parent) == before


def test_truncated_archive_is_an_input_error(tmp_path, dest):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(tar_bytes({"a.bin": os.urandom(200_000)})[:50_000])
    before = tree(dest.parent)
    with pytest.raises(InputError, match=r"cut\.tar\.gz: cannot unpack"):
        safe_extract(archive, dest)
    assert tree(dest.parent) == before

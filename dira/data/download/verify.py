"""Checking a downloaded file against its published size and md5, without ever destroying a file.

A file that fails the check is moved aside (``<name>.bad-<md5 prefix>``), not deleted: it may be the user's
only copy of something, and its md5 in the name tells two bad copies apart. Files with no published md5 are
reported as only size-checked or unverified, never as verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Literal

from dira.errors import InputError

log = logging.getLogger(__name__)

Status = Literal["verified", "size-checked", "unverified"]


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, md5: str | None = None, size: int | None = None) -> Status:
    """Check ``path`` against ``size`` and ``md5``; on a mismatch move it aside and raise InputError.

    Returns how far the file could be checked: 'verified' (md5 matched), 'size-checked' (only a size was
    known) or 'unverified' (nothing was known); the last two are logged as warnings.
    """
    return check_as(Path(path), Path(path), md5=md5, size=size)


def check_as(path: Path, name: Path, *, md5: str | None, size: int | None) -> Status:
    """``verify`` for a file still under a temporary name (``x.part``): messages and the set-aside copy use
    ``name``, the name it is meant to have."""
    if not path.is_file():
        raise InputError(f"{name}: file not found")
    found_size = path.stat().st_size
    found_md5 = md5sum(path) if md5 is not None or (size is not None and found_size != size) else None
    if (size is not None and found_size != size) or (md5 is not None and found_md5 != md5.lower()):
        aside = set_aside(path, name, found_md5)
        expected = f"md5 {md5} ({size if size is not None else 'unknown'} bytes)" if md5 else f"{size} bytes"
        raise InputError(f"{name}: checksum mismatch: expected {expected}, found md5 {found_md5} ({found_size} "
                         f"bytes); the bad file was moved aside to {aside}")
    if md5 is not None:
        log.info("%s: verified (md5 %s)", name, found_md5)
        return "verified"
    if size is not None:
        log.warning("%s: UNVERIFIED content: no md5 is published, only the size (%d bytes) was checked", name, size)
        return "size-checked"
    log.warning("%s: UNVERIFIED: neither md5 nor size is published, the file was not checked at all", name)
    return "unverified"


def set_aside(path: Path, name: Path, md5: str | None) -> Path:
    """Move ``path`` to ``<name>.bad-<md5 prefix>`` (a fresh name: an earlier bad copy is never replaced)."""
    stem = f"{name.name}.bad-{(md5 or md5sum(path))[:8]}"
    aside, n = name.with_name(stem), 1
    while aside.exists():
        aside, n = name.with_name(f"{stem}-{n}"), n + 1
    os.replace(path, aside)
    return aside

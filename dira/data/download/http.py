"""Resumable, verified HTTP downloads with the standard library.

Dataset files are gigabytes on servers that drop connections, so a download goes to ``<dest>.part``, continues
from where that file ends (an HTTP Range request), retries transient failures with exponential back-off, and
becomes ``dest`` only after its size and md5 passed: a ``dest`` that exists is always complete and checked.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from dira.data.download.verify import Status, check_as, verify
from dira.errors import InputError

log = logging.getLogger(__name__)

USER_AGENT = "dira-download (Python urllib)"
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 1 << 20
MAX_DELAY = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class TransientError(Exception):
    """A failure worth retrying: the connection, a 5xx answer, a truncated body."""


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def fetch(url: str, dest: Path, *, expected_size: int | None = None, md5: str | None = None, retries: int = 5,
          backoff: float = 1.0, timeout: float = 60, progress: bool = True) -> Status:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and verify it; returns how it was verified.

    A ``dest`` already present is verified, never downloaded again. ``retries`` counts only the attempts that
    made no progress: an attempt that enlarged the .part before failing is free, so a long transfer over a
    flaky link is not given up while it advances. A mismatch raises InputError (see ``verify``).
    """
    dest = Path(dest)
    if dest.exists():
        return verify(dest, md5=md5, size=expected_size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, failures = part_path(dest), 0
    while True:
        before = _size(part)
        try:
            _transfer(url, part, dest.name, expected_size, timeout, progress)
            break
        except TransientError as err:
            failures = failures if _size(part) > before else failures + 1
            if failures > retries:
                raise InputError(f"{dest}: download from {url} failed {failures} times in a row: {err}") from None
            delay = min(MAX_DELAY, backoff * 2 ** max(0, failures - 1))
            log.warning("%s: %s; retrying in %.1f s", dest.name, err, delay)
            time.sleep(delay)
    status = check_as(part, dest, md5=md5, size=expected_size)
    os.replace(part, dest)
    return status


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _transfer(url: str, part: Path, label: str, expected_size: int | None, timeout: float, progress: bool) -> None:
    """One attempt: request what ``part`` lacks and append it; TransientError when worth another try."""
    offset = _size(part)
    if expected_size is not None and offset > expected_size:
        part.unlink()  # longer than the file can be: not a prefix of it
        offset = 0
    if expected_size is not None and 0 < offset == expected_size:
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        try:
            _http_error(err, url, part, offset)
        finally:
            err.close()
        return
    except (OSError, http.client.HTTPException) as err:  # URLError, refused, reset, timeout, bad status line
        raise TransientError(f"{type(err).__name__}: {err}") from None
    with response:
        offset, end, total = _body_range(response, part, offset)
        _copy_body(response, part, offset, end, label, total or expected_size, progress)


def _http_error(err: urllib.error.HTTPError, url: str, part: Path, offset: int) -> None:
    """A 416 on a complete .part is success; 5xx/429 are transient; any other error status is final."""
    if err.code == 416:
        total = parse_content_range(err.headers.get("Content-Range", ""))[2]
        if offset and total == offset:
            return
        part.unlink(missing_ok=True)
        raise TransientError(f"HTTP 416: the server cannot serve bytes {offset}- (size {total}); restarting")
    if err.code in TRANSIENT_STATUS or err.code >= 500:
        raise TransientError(f"HTTP {err.code} {err.reason}")
    raise InputError(f"{url}: HTTP {err.code} {err.reason}")


def parse_content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """``bytes first-last/total`` -> (first, last, total); a ``*`` or a malformed header gives None."""
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if not match:
        return None, None, None
    first, last, total = (int(g) if g and g != "*" else None for g in match.groups())
    return first, last, total


def _body_range(response: http.client.HTTPResponse, part: Path, offset: int) -> tuple[int, int | None, int | None]:
    """(where the body starts in the file, where it should end, the file's size), from the answer's headers.

    A 200 to a Range request means the server ignored it: the body is the whole file, so start from zero.
    """
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        first, last, total = parse_content_range(response.headers.get("Content-Range", ""))
        if first != offset:
            part.unlink(missing_ok=True)
            raise TransientError(f"asked for bytes {offset}-, the server sent {first}-; restarting from zero")
        end = last + 1 if last is not None else (offset + length if length is not None else None)
        return offset, end, total
    if response.status == 200:
        if offset:
            log.info("%s: the server ignored the Range request; restarting from zero", response.url)
        return 0, length, length
    raise TransientError(f"unexpected HTTP {response.status} {response.reason}")


def _copy_body(response: http.client.HTTPResponse, part: Path, offset: int, end: int | None, label: str,
               total: int | None, progress: bool) -> None:
    received = offset
    with part.open("ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
            disable=not progress, leave=False) as bar:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise TransientError(f"connection lost after {received} bytes ({type(err).__name__}: {err})") from None
            if not chunk:
                break
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if end is not None and received < end:
        raise TransientError(f"connection closed after {received} of {end} bytes")

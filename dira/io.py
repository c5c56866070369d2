"""Atomic file output: a crash or a bad input never leaves a half-written result behind.

Every writer in the package goes through these helpers: the data lands under a temporary name in
the destination folder and is renamed into place only once it is complete.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic. If the block
    raises, the temporary file is removed and whatever existed at ``path`` before is left untouched. A
    temporary that a killed writer of the same file left behind (SIGKILL skips the cleanup) is removed first,
    so a rerun leaves no debris beside its outputs.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else ".tmp"
    for stale in final.parent.glob(glob.escape(f".{final.name}.") + "*" + glob.escape(suffix)):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, final)
    except Exception as err:
        full = disk_full_error(final, err)
        if full is None or full is err:
            raise
        raise full from err
    finally:
        if tmp.exists():
            tmp.unlink()


DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_HDF5_ERRNO = re.compile(r"errno = (\d+)")  # HDF5 reports a failed write(2) inside a RuntimeError's text


def disk_full_error(path: str | os.PathLike, err: BaseException) -> OSError | None:
    """An error naming ``path`` when ``err`` (or what it was raised from) is a full disk or a file-size limit.

    torch and HDF5 bury the failed write under their own messages ("iostream error", "Can't decrement id ref
    count"); this says which file was not written and that the one already there is kept.
    """
    seen: BaseException | None = err
    for _ in range(16):  # the chain of causes, bounded: one could in principle loop
        if seen is None:
            break
        code = seen.errno if isinstance(seen, OSError) else None
        if code is None and (match := _HDF5_ERRNO.search(str(seen))):
            code = int(match.group(1))
        if code in DISK_FULL:
            if seen is err and isinstance(err, OSError) and str(path) in str(err):
                return err  # named already (raised by an inner atomic write)
            return OSError(code, f"{path}: not written, {os.strerror(code)} (disk full or file size limit); "
                                 f"any earlier file at this path is unchanged")
        seen = seen.__cause__ or seen.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metrics and configs; everything else is a bug.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` through a temporary name (checkpoints are written every epoch)."""
    import torch

    # through a Python file, so that a failed write surfaces as an OSError (torch's own writer says only
    # "iostream error"); atomic_path turns a full disk into an error naming the checkpoint
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(obj, file)


def load_torch(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``: plain tensors and containers, never pickled code.

    A file whose pickle names other Python objects (a class, ``os.system`` ...) is refused with our own
    message: torch's advice to retry with ``weights_only=False`` would mean running whatever it holds.
    """
    import pickle

    import torch

    from dira.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        named = _PICKLED_GLOBAL.search(str(err))  # other UnpicklingErrors ("Unsupported operand") are garbage
        if named:
            raise InputError(f"{path}: not a loadable weights-only checkpoint: refused, it holds Python objects "
                             f"or code ({named.group(1)}) besides tensors") from None
        raise InputError(f"{path}: not a loadable weights-only checkpoint ({_torch_reason(err)})") from None
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise InputError(f"{path}: not a loadable weights-only checkpoint ({_torch_reason(err)})") from None


_PICKLED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _torch_reason(err: Exception) -> str:
    """The line of torch's message that says what is wrong, without its advice to disable ``weights_only``."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and "weights_only" not in line]
    reason = lines[0] if lines else type(err).__name__
    return f"{type(err).__name__}: {reason.split('. ')[0]}"

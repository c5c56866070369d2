"""SIIM-ACR stage-1 run-length encoding: relative offsets over a column-major pixel buffer.

An encoded mask is a list of (offset, length) pairs. The first offset counts from pixel 0, every later
one from the end of the previous run, and pixels are numbered down the columns (x * height + y), so a
run that is vertical in the flat buffer is a column of the image. ``-1`` (or nothing) is an empty mask.
The organisers' mask value is 255; here masks are 0/1.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

EMPTY = "-1"


def rle_runs(encoded: str) -> tuple[np.ndarray, np.ndarray]:
    """Absolute [start, end) of each run in the flat column-major buffer; checks the syntax only.

    Raises ValueError for tokens that are not integers, an odd number of them, or negative values;
    whether the runs fit an image is for ``decode_rle`` to say, once the image size is known.
    """
    tokens = encoded.split()
    if not tokens or tokens == [EMPTY]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        numbers = np.array([int(token) for token in tokens], np.int64)
    except ValueError:
        raise ValueError(f"RLE holds a token that is not an integer: {_excerpt(encoded)}") from None
    if numbers.size % 2:
        raise ValueError(f"RLE has an odd number ({numbers.size}) of values; expected offset/length pairs")
    if (numbers < 0).any():
        raise ValueError(f"RLE holds a negative value: {_excerpt(encoded)}")
    offsets, lengths = numbers[0::2], numbers[1::2]
    ends = np.cumsum(offsets + lengths)
    return ends - lengths, ends


def check_rle_fits(encoded: str, height: int = 1024, width: int = 1024) -> None:
    """ValueError unless the runs end within a height×width image (real rows end by pixel 1,021,949)."""
    _check_fits(rle_runs(encoded)[1], height, width)


def decode_rle(encoded: str, height: int = 1024, width: int = 1024) -> np.ndarray:
    """uint8 (height, width) 0/1 mask of one encoded row; ValueError if the runs leave the image."""
    starts, ends = rle_runs(encoded)
    _check_fits(ends, height, width)
    flat = np.zeros(height * width, np.uint8)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):  # hundreds of runs at most
        flat[start:end] = 1
    return flat.reshape(width, height).T.copy()  # column-major: row x of the reshape is image column x


def union_masks(encoded_rows: Iterable[str], height: int = 1024, width: int = 1024) -> np.ndarray:
    """One image's mask from all its rows: the release lists each separate region on its own row."""
    mask = np.zeros((height, width), np.uint8)
    for encoded in encoded_rows:
        mask |= decode_rle(encoded, height, width)
    return mask


def encode_rle(mask: np.ndarray) -> str:
    """The inverse of ``decode_rle`` for a 2-D mask (nonzero = inside); ``-1`` when it is empty."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    flat = np.concatenate([[0], (mask.T.ravel() != 0).astype(np.int8), [0]])
    changes = np.flatnonzero(np.diff(flat))
    if changes.size == 0:
        return EMPTY
    starts, ends = changes[0::2], changes[1::2]
    offsets = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(str(v) for v in np.column_stack([offsets, ends - starts]).ravel())


def _check_fits(ends: np.ndarray, height: int, width: int) -> None:
    if ends.size and ends[-1] > height * width:
        raise ValueError(f"RLE runs end at pixel {ends[-1]}, beyond the {height * width} pixels of a "
                         f"{width}x{height} image")


def _excerpt(encoded: str, limit: int = 60) -> str:
    return repr(encoded if len(encoded) <= limit else encoded[:limit] + "...")

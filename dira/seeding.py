"""Seeds derived from several parts, so every random draw can be traced back to (seed, epoch, index)."""

from __future__ import annotations

import numpy as np


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from several parts (base seed, epoch, sample index, a name, ...)."""
    words = np.random.SeedSequence([_as_int(p) for p in parts]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _as_int(part: int | str) -> int:
    if isinstance(part, int):
        return part % (1 << 63) if part < 0 else part
    return int.from_bytes(part.encode(), "little") % (1 << 63)

"""Keep a training process's freed batch buffers in its heap instead of handing them back to the kernel.

torch allocates CPU tensors with malloc. glibc serves a large request with a fresh mmap (and grows its
threshold only up to the size of the largest block freed so far), and gives freed memory at the top of the
heap back to the kernel once more than twice that threshold is free. A training step's views, targets and
activations are such buffers, allocated and freed every step: each time the kernel zero-fills every page again on
its first touch. For the CPU views of a 1024² batch of 64 that is ~9,600 page faults a batch, a quarter or more of
their rendering time (``benchmarks/views.py``). With both thresholds raised the same pages serve every step.
A process holds at most its peak use, as jemalloc and tcmalloc (the allocators PyTorch's CPU tuning guide
suggests preloading) do by default.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20  # larger requests still get their own mapping, returned when freed
TRIM_THRESHOLD = 1 << 30


def keep_freed_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where the C library is not glibc's (or
    refuses), which changes nothing but speed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

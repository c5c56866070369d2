"""A full disk (here a file-size limit, RLIMIT_FSIZE) while a cache or a checkpoint is written: an error naming
the file, the previous file intact, no half-written file anywhere."""

import subprocess
import sys
import textwrap

import pytest

LIMIT = 1 << 20  # bytes: the small first files fit, the second ones do not

PRELUDE = f"""
import resource, signal, sys
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing
def limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))
"""

CACHE = """
from dira.data.cache import CacheWriter
def write(n):
    with CacheWriter(sys.argv[1], n, 64, {"dataset": "toy"}) as cache:
        for i in range(n):
            cache.write_image(i, np.full((64, 64), i % 251, np.uint8), (64, 64))
        cache.write_array("ids", [f"id{i}" for i in range(n)])
write(4)
limit()
write(1000)  # 4 MB of rows
"""

CHECKPOINT = """
import torch
from dira.io import save_torch
save_torch(sys.argv[1], {"weight": torch.ones(10)})
limit()
save_torch(sys.argv[1], {"weight": torch.zeros(1_000_000)})  # 4 MB
"""


def _run(script, path):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE + script), str(path)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("script", [CACHE, CHECKPOINT], ids=["hdf5_cache", "checkpoint"])
def test_a_full_disk_names_the_file_and_keeps_the_previous_one(script, tmp_path):
    path = tmp_path / ("train.h5" if script is CACHE else "model.pt")
    done = _run(script, path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("OSError: [Errno 27]") and f"{path}: not written" in last, done.stderr[-2000:]
    assert "any earlier file at this path is unchanged" in last
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temporary file is gone
    if script is CACHE:
        from dira.data.cache import SplitCache

        assert len(SplitCache(path)) == 4
    else:
        from dira.io import load_torch

        assert load_torch(path)["weight"].tolist() == [1.0] * 10


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """SIGKILL skips atomic_path's cleanup; the next write of the same file clears what it left."""
    import torch

    from dira.io import save_torch

    stale = tmp_path / ".method.pt.ik_ze1no.tmp"  # the name a killed export left in a CI run
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".unet.pt.abcdefgh.tmp"  # another file's temporary: not this writer's to remove
    other.write_bytes(b"x")
    save_torch(tmp_path / "method.pt", {"w": torch.zeros(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".unet.pt.abcdefgh.tmp", "method.pt"]

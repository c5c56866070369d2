"""A training process reuses its freed batch buffers: no page is zero-filled again from one step to the next."""

import subprocess
import sys

import pytest

STEPS = """
import resource, sys, torch
from dira.runtime.allocator import keep_freed_buffers
kept = keep_freed_buffers() if sys.argv[1] == "keep" else None
def step():  # a CPU view batch's three outputs at the paper's batch: view1, view2, target (256 x 224 x 224 float32)
    outs = [torch.empty(256, 224, 224).fill_(1.0) for _ in range(3)]
    del outs
for _ in range(8):  # glibc settles the heap's layout within a few steps
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 5 * 3 * 256 * 224 * 224 * 4 // 4096  # pages the five steps write


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True).stdout
    kept, count = out.split()
    return kept, int(count)


@pytest.fixture(scope="module")
def kept() -> int:
    applied, count = faults("keep")
    if applied != "True":
        pytest.skip("not glibc: the allocator setting does not apply")
    return count


def test_kept_buffers_are_not_faulted_in_again(kept):
    assert kept < PAGES // 20, (kept, PAGES)  # steady state: the same pages serve every step


def test_glibc_default_faults_them_in_every_step(kept):
    """What the setting is for: by default glibc maps each buffer over 32 MB afresh and unmaps it when freed."""
    assert faults("default")[1] > PAGES // 2, PAGES

"""Two `snakemake` runs in one folder: the second refuses (Snakemake's lock), the first completes.

The first run is frozen (SIGSTOP to its process group) once it holds the lock and thawed after the second has
tried, so the two overlap whatever the machine's load: on a loaded host the second Snakemake took longer to start
than the first took to finish (6.6 s), and the test tested nothing.
"""

import os
import signal
import time

import pytest
from faultlib import run_snakemake, start_snakemake, write_roots


@pytest.mark.slow
def test_second_run_in_the_same_folder_refuses_while_the_first_completes(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    configs = write_roots(workdir)
    target = "data/processed/chestxray14/train.h5"  # synth + prepare
    first = start_snakemake(workdir, "--cores", "1", "--configfile", *configs, "--", target, log=tmp_path / "first.log")
    try:
        locks = workdir / ".snakemake/locks"
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(locks.iterdir())):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGSTOP)  # holding its lock, mid-run
        try:
            assert first.poll() is None, "the first run ended before the second could try: nothing was tested"
            second = run_snakemake(workdir, "--cores", "1", "--configfile", *configs, "--", target)
        finally:
            os.killpg(first.pid, signal.SIGCONT)
    finally:
        first.wait(timeout=600)
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout
    assert "no other Snakemake process is trying to create the same files" in second.stdout
    assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert (workdir / target).is_file()

"""Paths with spaces, quotes, `;`, `$()` and backticks pass through every rule as data, never as shell."""

import subprocess
import sys

import pytest
from faultlib import NASTY, REPO


@pytest.mark.slow
def test_nasty_folder_and_dataset_roots_run_every_stage_and_nothing_is_executed(nasty_run):
    workdir, _ = nasty_run
    for name in ("chestxray14", "luna16"):
        assert (workdir / f"raw {NASTY}" / name / "dira_synthetic.json").is_file()  # the set's own marker
        assert (workdir / f"data/located/{name}.json").is_file()  # the stamp its job declares, outside the set
    assert (workdir / "results/tables/transfer.csv").is_file()
    assert (workdir / "results/tables/table5_localization.csv").is_file()
    assert (workdir / "results/report.html").is_file()
    # an unquoted path would have run `touch PWNED` in some job's folder (the run folder, its parent, a dataset's)
    pwned = [*workdir.parent.rglob("PWNED"), *REPO.glob("PWNED")]
    assert pwned == []


@pytest.mark.slow
def test_lint_is_clean():
    done = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in done.stdout + done.stderr

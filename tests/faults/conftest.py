from pathlib import Path

import pytest
from faultlib import NASTY, run_snakemake, write_roots

# Helpers live in faultlib.py: a test module that imported `conftest` would shadow tests/workflow/conftest.py,
# which other test modules import under that same name.


@pytest.fixture(scope="session")
def nasty_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """One uninterrupted run of the small config (fine-tuned weights kept, `--notemp`) in a folder, and on dataset
    roots, named with a quote, `;`, `$()`, backticks and spaces: the baseline of the fault tests."""
    workdir = tmp_path_factory.mktemp("faults") / NASTY
    workdir.mkdir()
    configs = write_roots(workdir)
    done = run_snakemake(workdir, "--cores", "2", "--notemp", "--configfile", *configs, timeout=1200)
    assert done.returncode == 0, done.stdout[-5000:]
    return workdir, configs

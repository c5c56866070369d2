"""profiles/slurm on a real one-node SLURM cluster: the README's "Reproduce on a cluster" block, run verbatim.

`.ci/slurm_cluster.sh up` installs Debian's slurmctld, slurmd, slurm-client and munge and starts them on localhost
(root); the test skips only when those packages cannot be installed (and fails instead where DIRA_REQUIRE_CLUSTER=1,
as in CI). The README's bash block then runs in a copy of the workflow with its documented substitutions only:
partition `debug`, no account, and `config/test.yaml tests/cluster/cluster.yaml` for `config/paper.yaml` (one
fine-tuning on Montgomery). Three jobs must go through SLURM with the profile's requests and finish; the local
rules must run beside Snakemake, never as SLURM jobs. The cluster is stopped again only if this test started it.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / ".ci" / "slurm_cluster.sh"
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
# The README block's placeholders and what the test puts in their place (also stated in the README).
SUBSTITUTIONS = {
    "DIRA_SLURM_PARTITION=gpu": "DIRA_SLURM_PARTITION=debug",
    "DIRA_SLURM_ACCOUNT=my_project": "DIRA_SLURM_ACCOUNT=",
    "--configfile config/paper.yaml": "--configfile config/test.yaml tests/cluster/cluster.yaml",
}
SUBMITTED = {"synth_montgomery", "prepare_montgomery", "finetune"}
LOCAL = {"aggregate", "figure", "compare"}
RUN_SECONDS = 480


def readme_block() -> str:
    """The one fenced bash block of README.md's "## Reproduce on a cluster" section."""
    readme = (REPO / "README.md").read_text()
    sections = re.split(r"^## ", readme, flags=re.M)
    section = [s for s in sections if s.startswith("Reproduce on a cluster\n")]
    assert len(section) == 1, "README.md needs exactly one '## Reproduce on a cluster' section"
    blocks = re.findall(r"^```bash\n(.*?)^```", section[0], flags=re.M | re.S)
    assert len(blocks) == 1, "the section needs exactly one ```bash block"
    return blocks[0]


def substituted(block: str) -> str:
    for placeholder, value in SUBSTITUTIONS.items():
        assert placeholder in block, f"the README block no longer contains {placeholder!r}"
        block = block.replace(placeholder, value)
    assert "paper.yaml" not in block and "my_project" not in block
    return block


def slurmctld_answers() -> bool:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return ping.returncode == 0 and "UP" in ping.stdout


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster (partition `debug`); brought down afterwards if this fixture started it."""
    started_here = not slurmctld_answers()
    up = subprocess.run(["timeout", "-s", "KILL", "600", "bash", str(CLUSTER), "up"], capture_output=True, text=True)
    if up.returncode == 3:
        why = re.sub(r"^\[slurm-cluster +[\d.]+s\] ", "", up.stderr.strip().splitlines()[-1])
        reason = f"the SLURM packages cannot be installed here ({why})"
        if os.environ.get("DIRA_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"DIRA_REQUIRE_CLUSTER=1 but {reason}")
        pytest.skip(reason)
    try:
        assert up.returncode == 0, f".ci/slurm_cluster.sh up failed:\n{up.stdout}\n{up.stderr}"
        yield up.stderr
    finally:
        if started_here:
            down = subprocess.run(["timeout", "-s", "KILL", "120", "bash", str(CLUSTER), "down"],
                                  capture_output=True, text=True)
            assert down.returncode == 0, down.stderr


def slurm_job(jobid: str) -> dict[str, str]:
    """`scontrol show job` of a job SLURM still remembers (MinJobAge), as {field: value}."""
    shown = subprocess.run(["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, check=True)
    return dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", shown.stdout))


def profile_value(resources: dict, name: str) -> int:
    """A resource expression of the profile, evaluated as Snakemake does for a first attempt."""
    return eval(str(resources[name]), {"attempt": 1})


def test_readme_block_runs_the_workflow_through_slurm(slurm_cluster, tmp_path):
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), \
        "snakemake-executor-plugin-slurm is not installed (`--profile profiles/slurm` needs it)"
    script = substituted(readme_block())
    # The repository's workflow in a scratch folder: the block runs from the repository root.
    work = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / folder, work / folder, ignore=ignore)
    shutil.copy(REPO / "Snakefile", work)
    (work / "tests/cluster").mkdir(parents=True)
    shutil.copy(REPO / "tests/cluster/cluster.yaml", work / "tests/cluster")
    # The environment the README asks for (this interpreter's `dira` and `snakemake` first on PATH); the jobs
    # inherit it through sbatch --export=ALL.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    start = time.monotonic()
    # timeout kills the whole process group (bash, Snakemake and its children) if Snakemake ever hangs.
    run = subprocess.run(["timeout", "-s", "KILL", str(RUN_SECONDS), "bash", "-e", "-c", script], cwd=work, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=RUN_SECONDS + 60)
    seconds = time.monotonic() - start
    assert run.returncode == 0, f"exit {run.returncode} after {seconds:.0f} s:\n{run.stdout[-6000:]}"
    print(f"README block through SLURM: {seconds:.0f} s")

    # Snakemake submitted exactly the non-local jobs to SLURM, each once, and saw every one of them finish.
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", run.stdout)
    jobs = {jobid: slurm_job(jobid) for jobid in submitted}
    rules = sorted(job["Comment"].removeprefix("rule_").split("_wildcards_")[0] for job in jobs.values())
    assert rules == sorted(SUBMITTED), run.stdout[-6000:]
    assert "7 of 7 steps (100%) done" in run.stdout

    # SLURM ran them in this workflow's folder with what the profile asks for.
    profile = yaml.safe_load(PROFILE.read_text())
    defaults = profile["default-resources"]
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    for job in jobs.values():
        rule = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        resources = {**defaults, **profile["set-resources"].get(rule, {})}
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert job["Partition"] == "debug" and job["Account"] == "(null)", job
        assert Path(job["WorkDir"]).resolve() == work.resolve()
        minutes = profile_value(resources, "runtime")
        assert job["TimeLimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00", (rule, job["TimeLimit"])
        assert job["MinMemoryCPU"] == f"{profile_value(resources, 'mem_mb_per_cpu')}M", (rule, job)
        if rule == "finetune":
            # one GPU and cpus_per_gpu CPUs with it, as the profile sets for every fine-tuning job
            assert job["TresPerJob"] == f"gres:gpu:{resources['gpu']}", job
            assert job["CpusPerTres"] == f"gres:gpu:{resources['cpus_per_gpu']}", job
        else:
            assert "TresPerJob" not in job or "gpu" not in job["TresPerJob"], job

    # The products: the SLURM jobs' outputs, and what the local rules made of them on the submitting host.
    metrics = json.loads((work / "results/finetune/montgomery/random/seed0/metrics.json").read_text())
    assert 0 <= metrics["value"] <= 1
    for path in ("results/tables/montgomery.csv", "results/figures/montgomery.png", "results/tables/transfer.csv"):
        assert (work / path).stat().st_size > 0, path
    for rule in LOCAL:
        assert re.search(rf"^localrule {rule}:$", run.stdout, flags=re.M), rule

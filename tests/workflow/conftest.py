import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's workflow in a scratch working directory (output and errors in stdout)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          timeout=timeout)


@pytest.fixture
def snakemake():
    return run_snakemake


@pytest.fixture(scope="module")
def snakemake_module():
    return run_snakemake


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run or dry run, as {rule: count}."""
    table = stdout.split("Job stats:")[1].split("Reasons:")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def sh(script: str, cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    """Run commands as a bash script that stops at the first failure; echoed commands and output, interleaved."""
    done = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    assert done.returncode == 0, done.stdout[-6000:]
    return done.stdout


def published_repository(tmp_path: Path, env: dict[str, str]) -> Path:
    """A bare repository holding this working tree as it is (tracked and untracked, not ignored, files)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            stdout=subprocess.PIPE, text=True).stdout
    src = tmp_path / "src"
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the work tree is listed too
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    sh("git init -q && git add -A && git commit -qm snapshot", src, env)
    sh(f"git clone -q --bare {src} {tmp_path / 'origin.git'}", tmp_path, env)
    return tmp_path / "origin.git"


def files_under(root: Path, *, hidden: bool = True) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()
            and (hidden or not any(part.startswith(".") for part in p.relative_to(root).parts))}


def readme_section(title: str) -> str:
    """The text of one README section (from its `## title` line to the next `## `)."""
    readme = (REPO / "README.md").read_text()
    heading = f"## {title}"
    assert heading in readme
    return re.split(r"^## ", readme.split(heading, 1)[1], flags=re.M)[0]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)

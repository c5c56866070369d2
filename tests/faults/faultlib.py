"""Helpers of the fault tests: Snakemake in a scratch folder, whole-process-tree SIGKILL, output comparison."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [str(REPO / "config/test.yaml"), str(REPO / "tests/faults/small.yaml")]
# a folder name the shell would split, unquote, end a command at and run a command from if any rule left a
# path unquoted
NASTY = "it's a dir; $(touch PWNED) `touch PWNED`"
_VOLATILE = re.compile(r"created|time|elapsed|seconds|per_s|duration|host", re.I)  # keys that differ between runs


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            *args]


def snakemake_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Snakemake on the repository's workflow in ``workdir`` (run from its parent; output and errors in stdout)."""
    return subprocess.run(snakemake_command(workdir, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=snakemake_env(), timeout=timeout, cwd=workdir.parent)


def start_snakemake(workdir: Path, *args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(snakemake_command(workdir, *args), stdout=out, stderr=subprocess.STDOUT,
                                env=snakemake_env(), cwd=workdir.parent, start_new_session=True)


def _metadata(workdir: Path, output: str) -> Path:
    return workdir / ".snakemake/metadata" / base64.b64encode(output.encode()).decode()


def declared_output(workdir: Path, path: str) -> bool:
    """Whether a rule declares ``path`` (Snakemake keeps a record of it), not a file its job wrote besides."""
    return _metadata(workdir, path).is_file()


def job_duration(workdir: Path, output: str) -> float:
    """Seconds the job that wrote ``output`` ran for, from Snakemake's metadata of the uninterrupted run."""
    record = json.loads(_metadata(workdir, output).read_text())
    return record["endtime"] - record["starttime"]


def find_job(proc: subprocess.Popen, command: str) -> psutil.Process | None:
    """The running `dira <command>` job under Snakemake process ``proc``, if any."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        if any(Path(a).name == "dira" for a in argv[:2]) and command in argv[1:3]:
            return child
    return None


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every process it started, as a power cut or an OOM kill of the session would."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def wait_for_job(proc: subprocess.Popen, command: str, deadline: float) -> psutil.Process | None:
    """The `dira <command>` process under Snakemake once it starts; None if Snakemake ends or the deadline passes."""
    while (job := find_job(proc, command)) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    return job


def kill_mid_job(proc: subprocess.Popen, command: str, after: float, timeout: float = 300) -> bool:
    """Wait for the `dira <command>` job, then SIGKILL the whole tree ``after`` seconds into it.

    Returns whether the job was still running when the kill landed (False: it finished first)."""
    job = wait_for_job(proc, command, time.monotonic() + timeout)
    if job is None:
        return False
    started = job.create_time()
    while time.time() < started + after:
        time.sleep(0.01)
    landed = job.is_running() and job.status() != psutil.STATUS_ZOMBIE
    kill_tree(proc)
    return landed


def kill_after_job(proc: subprocess.Popen, command: str, timeout: float = 300) -> bool:
    """Wait for the `dira <command>` job, stop Snakemake (SIGSTOP), let the job run to its end, then SIGKILL the tree.

    This lands the kill in the window between a job's end and Snakemake's record of it, every time: the job wrote
    everything, Snakemake recorded nothing. Returns whether the job was still running when Snakemake stopped."""
    deadline = time.monotonic() + timeout
    job = wait_for_job(proc, command, deadline)
    if job is None:
        return False
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        running = job.is_running() and job.status() != psutil.STATUS_ZOMBIE
        if running:
            job.wait(timeout=max(deadline - time.monotonic(), 1))
    except psutil.NoSuchProcess:
        running = False
    kill_tree(proc)  # SIGKILL ends a stopped process too
    return running


def files_under(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not _VOLATILE.search(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _array(data: np.ndarray) -> tuple:
    raw = data.tolist() if data.dtype == object else data.tobytes()  # text: the strings, not their pointers
    return raw, str(data.dtype), data.shape


def _attrs(node) -> dict:
    out = {}
    for key, value in node.attrs.items():
        if _VOLATILE.search(key):
            continue
        if isinstance(value, str) and value[:1] in "{[":
            value = _strip(json.loads(value))
        out[key] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


def _h5(path: Path) -> dict:
    content = {}
    with h5py.File(path, "r") as file:
        content["/"] = _attrs(file)

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                content[name] = (*_array(np.asarray(node[()])), _attrs(node))

        file.visititems(visit)
    return content


def content(path: Path, run: Path):
    """What a result holds, less what legitimately differs between two runs: creation times and durations, and
    the run folder's own absolute path (a copy of a run lives elsewhere)."""
    found = _content(path)
    if isinstance(found, dict | list):  # compared as text: NaN equals NaN, the folder is named alike
        return json.dumps(found, default=repr, sort_keys=True).replace(str(run), "<run>")
    return found


def _content(path: Path):
    suffix = path.suffix
    if suffix == ".json":
        return _strip(json.loads(path.read_text()))
    if suffix == ".h5":
        return _h5(path)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return {k: _array(arrays[k]) for k in arrays.files}
    if suffix == ".pt":
        import torch

        from dira.io import load_torch

        def flat(obj, prefix=""):
            if isinstance(obj, dict):
                return {k2: v2 for k, v in obj.items() for k2, v2 in flat(v, f"{prefix}{k}.").items()}
            if isinstance(obj, list | tuple):
                return {k2: v2 for i, v in enumerate(obj) for k2, v2 in flat(v, f"{prefix}{i}.").items()}
            if isinstance(obj, torch.Tensor):
                return {prefix: (obj.numpy().tobytes(), str(obj.dtype), tuple(obj.shape))}
            return {prefix: obj}

        return flat(load_torch(path))
    if suffix == ".csv" and path.name == "history.csv":  # per-epoch log: drop its timing columns
        lines = [line.split(",") for line in path.read_text().splitlines()]
        keep = [i for i, name in enumerate(lines[0]) if not _VOLATILE.search(name)] if lines else []
        return [[row[i] for i in keep] for row in lines]
    return path.read_bytes()


def differences(expected_root: Path, actual_root: Path, paths: list[str]) -> list[str]:
    """The files (relative paths) whose content differs between two run folders, or that one of them lacks."""
    return [p for p in paths if not (actual_root / p).is_file()
            or content(expected_root / p, expected_root) != content(actual_root / p, actual_root)]


SMALL_DATASETS = ("chestxray14", "luna16")  # what tests/faults/small.yaml reads


def write_roots(workdir: Path) -> list[str]:
    """The configs of a run whose dataset roots (relative to ``workdir``) hold quotes, `;`, `$()` and spaces."""
    roots = {name: {"root": f"raw {NASTY}/{name}"} for name in SMALL_DATASETS}
    overlay = workdir / f"roots {NASTY}.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": roots}))
    return [*CONFIGS, str(overlay)]


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a finished run, modification times kept. Weights and caches are hard links (dira replaces them
    by rename, never in place); Snakemake's records and everything small are real copies."""
    def link_or_copy(src, dst):
        if src.endswith((".pt", ".h5")) and "/.snakemake/" not in src:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, symlinks=True)
    return target

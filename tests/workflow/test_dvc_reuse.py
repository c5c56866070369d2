"""README 'Reuse published artifacts', followed verbatim: one user runs the test DAG and publishes data and
checkpoints with DVC, a second user clones, pulls and is left with only fine-tuning, evaluation and reporting.

The README's commands run as written, with two substitutions: the DVC remote URL (a folder here) and the
repository URL (a bare repository here, which the first user clones and pushes to). They run on
config/test.yaml through a Snakemake profile named by $SNAKEMAKE_PROFILE, so `snakemake` stays verbatim.
"""

import filecmp
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import REPO, bash_blocks, files_under, job_counts, published_repository, readme_section, sh

SECTION = "Reuse published artifacts"
REMOTE_URL = "<remote-url>"
REPOSITORY_URL = "<repository-url>"
UPSTREAM = re.compile(r"synth_\w+|prepare_\w+|gather_\w+|discover|pretrain")  # the jobs whose outputs DVC restores


def readme_blocks() -> tuple[str, str]:
    """The section's last two bash blocks: the first user's and the second user's commands."""
    blocks = bash_blocks(readme_section(SECTION))
    assert len(blocks) == 4, blocks  # the demo's published data.dvc: checked, then served from one's own remote
    return blocks[2], blocks[3]


class _Sentinel(BaseHTTPRequestHandler):
    """Stands in for DVC's analytics and updater endpoints; records every request it receives."""

    requests: ClassVar[list[str]] = []

    def _record(self):
        self.requests.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _record

    def log_message(self, *args):
        pass


@pytest.fixture
def sentinel():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sentinel)
    _Sentinel.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Sentinel.requests
    server.shutdown()
    server.server_close()


def user_env(tmp_path: Path, sentinel_url: str) -> dict[str, str]:
    """The environment of both users: the test config by profile, DVC's network endpoints on the sentinel, and
    no setting outside the repository that could switch DVC's analytics or update check off on its own."""
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(f"configfile: [{REPO / 'config/test.yaml'}]\n")
    dvc_global, dvc_system = tmp_path / "dvc-global", tmp_path / "dvc-system"
    dvc_global.mkdir()
    dvc_system.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "DVC_TEST", "DVC_NO_ANALYTICS"}}
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SNAKEMAKE_PROFILE": str(profile),
        "DVC_GLOBAL_CONFIG_DIR": str(dvc_global),
        "DVC_SYSTEM_CONFIG_DIR": str(dvc_system),
        "DVC_ANALYTICS_ENDPOINT": f"{sentinel_url}/analytics",
        "DVC_UPDATER_ENDPOINT": f"{sentinel_url}/updater",
        "GIT_AUTHOR_NAME": "First User",
        "GIT_AUTHOR_EMAIL": "first@example.org",
        "GIT_COMMITTER_NAME": "First User",
        "GIT_COMMITTER_EMAIL": "first@example.org",
    }


@pytest.mark.slow
def test_second_user_pulls_data_and_checkpoints_and_redoes_only_finetuning_onwards(snakemake, sentinel, tmp_path):
    sentinel_url, sentinel_requests = sentinel
    first_block, second_block = readme_blocks()
    assert first_block.count(REMOTE_URL) == 1 and second_block.count(REPOSITORY_URL) == 1
    second_lines = second_block.strip().splitlines()
    assert second_lines[-2:] == ["snakemake -n", "snakemake --cores all"]

    env = user_env(tmp_path, sentinel_url)
    origin = published_repository(tmp_path, env)
    remote = tmp_path / "dvc-remote"

    # first user: a clone of the repository; the run of the test DAG, versioning, push
    first = tmp_path / "first"
    first.mkdir()
    sh(f"git clone -q {origin} dira", first, env)
    first /= "dira"
    crashed = first / "results/pretrain/mocov2/.state/dir/latest.pt"  # resumable state of an interrupted run
    crashed.parent.mkdir(parents=True)
    crashed.write_bytes(b"training state")
    sh(first_block.replace(REMOTE_URL, str(remote)), first, env, timeout=1500)
    assert crashed.is_file()
    # `dvc add` left the first user's outputs as Snakemake knows them, and the published config keeps DVC offline
    assert "Nothing to be done" in sh("snakemake -n", first, env)
    for key in ("core.analytics", "core.check_update"):
        assert sh(f"dvc config --project {key}", first, env).strip().splitlines()[-1] == "false"

    # second user: the README's commands up to (not including) the full run; the dry run is the last of them
    second = tmp_path / "second"
    second.mkdir()
    out = sh("\n".join(second_lines[:-1]).replace(REPOSITORY_URL, str(origin)), second, env)
    second /= "dira"
    plan = job_counts(out.rsplit("\n+ snakemake -n\n", 1)[1])

    # DVC restored data and checkpoints byte for byte, without the first user's resumable training state
    assert files_under(second / "data") == files_under(first / "data")
    pretrain_files = files_under(first / "results/pretrain", hidden=False)
    assert {Path("mocov2/base/encoder.pt"), Path("mocov2/dira/unet.pt"), Path("transvw/dira/unet.pt")} <= pretrain_files
    assert files_under(second / "results/pretrain") == pretrain_files
    assert not (second / "results/pretrain/mocov2/.state").exists()
    for root in ("data", "results/pretrain"):
        names = [str(p) for p in files_under(second / root)]
        assert filecmp.cmpfiles(first / root, second / root, names, shallow=False)[0] == names

    # the plan is exactly a fresh run's without synthesis, preparation and pre-training
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = job_counts(snakemake(fresh_dir, "-n", "--configfile", str(REPO / "config/test.yaml")).stdout)
    assert fresh["pretrain"] == 4 and fresh["discover"] == 1 and fresh["prepare_chestxray14"] == 1
    assert fresh["finetune"] > 0
    expected = {rule: n for rule, n in fresh.items() if rule != "total" and not UPSTREAM.fullmatch(rule)}
    assert {rule: n for rule, n in plan.items() if rule != "total"} == expected
    assert plan["total"] == sum(expected.values())

    # neither user's DVC called its analytics or updater endpoint
    assert sentinel_requests == []

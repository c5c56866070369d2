"""`dira pretrain` end to end on a tiny cache: outputs, staged continuation, crash and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torchvision
from toy import write_toy_caches

from dira.io import load_torch

SETTINGS = {
    "device": "cpu",
    "threads": 1,
    "model": {"backbone": "resnet18", "decoder_channels": [32, 16, 16, 8, 8], "input_size": 32},
    "pretrain": {
        "batch_size": 8, "num_workers": 0,
        "epochs": {"restoration_warmup": 1, "adversarial": 1},
        "mocov2": {"epochs": 3, "queue_size": 32, "hidden_dim": 32, "out_dim": 16},
    },
}


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return write_toy_caches(tmp_path_factory.mktemp("cache"), {"train": 48, "val": 16})


def _command(caches, out, variant="base", init=None):
    cmd = [sys.executable, "-m", "dira.cli", "pretrain", "--method", "mocov2", "--variant", variant,
           "--train", str(caches / "train.h5"), "--val", str(caches / "val.h5"), "--out", str(out),
           "--config", json.dumps(SETTINGS)]
    return cmd + (["--init", str(init)] if init else [])


def _run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_outputs_load_and_dira_continues_from_base(caches, tmp_path):
    base, dira = tmp_path / "mocov2" / "base", tmp_path / "mocov2" / "dira"
    _run(_command(caches, base))
    resnet = torchvision.models.resnet18(weights=None)
    missing = resnet.load_state_dict(load_torch(base / "encoder.pt"), strict=False).missing_keys
    assert sorted(missing) == ["fc.bias", "fc.weight"]
    meta = json.loads((base / "meta.json").read_text())
    assert meta["stages"] == [{"stage": "di", "epochs": 3}]
    assert meta["provenance"]["config"]["pretrain"]["batch_size"] == 8
    assert len((base / "history.csv").read_text().splitlines()) == 1 + 3
    assert not (tmp_path / "mocov2" / ".state" / "base").exists()  # state is cleared once outputs exist

    done = _run(_command(caches, dira, "dira", init=base / "method.pt"))
    assert "[dira] epoch 1" in done.stderr
    history = (dira / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["dir", "dira"]
    assert "train_d" in history[0] and history[2].split(",")[7] != ""  # the discriminator trained
    method = load_torch(dira / "method.pt")
    assert any(k.startswith("discriminator.") for k in method)
    unet = load_torch(dira / "unet.pt")
    assert not torch.equal(unet["decoder.blocks.0.conv1.0.weight"],
                           load_torch(base / "unet.pt")["decoder.blocks.0.conv1.0.weight"])


def test_dira_without_init_is_refused(caches, tmp_path):
    done = subprocess.run(_command(caches, tmp_path / "x", "dira"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs --init" in done.stderr


@pytest.mark.slow
def test_killed_run_resumes_to_bitwise_identical_weights(caches, tmp_path):
    reference, crashed = tmp_path / "reference" / "base", tmp_path / "crashed" / "base"
    _run(_command(caches, reference))

    state = crashed.parent / ".state" / "base" / "latest.pt"
    proc = subprocess.Popen(_command(caches, crashed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not state.exists() and time.monotonic() < deadline:  # epoch 1 saved: now inside epoch 2
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (crashed / "encoder.pt").exists()

    done = _run(_command(caches, crashed))
    assert "resuming" in done.stderr
    for name in ("encoder.pt", "unet.pt", "method.pt"):
        a, b = load_torch(reference / name), load_torch(crashed / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_trains_and_exports(caches, tmp_path):
    out = tmp_path / "ddp" / "mocov2" / "dira"
    base = tmp_path / "ddp" / "mocov2" / "base"
    _run(_command(caches, base))
    cmd = _command(caches, out, "dira", init=base / "method.pt")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    done = _run(torchrun + cmd[2:])  # `python -m dira.cli ...` becomes `torchrun ... -m dira.cli ...`
    assert "on cpu x 2" in done.stderr
    history = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["dir", "dira"]
    assert torch.isfinite(load_torch(out / "encoder.pt")["conv1.weight"]).all()

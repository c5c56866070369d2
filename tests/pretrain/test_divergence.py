"""A non-finite loss stops pre-training with the epoch, step and term named, and the saved state intact."""

import pytest
import torch
from toy import write_toy_caches

from dira.config import validate
from dira.io import load_torch
from dira.methods.dira import DiRA
from dira.train.pretrain import TrainingDiverged, pretrain


@pytest.fixture
def caches(tmp_path):
    return write_toy_caches(tmp_path, {"train": 16, "val": 8})


def test_nan_restoration_loss_stops_the_run_and_keeps_the_last_good_state(caches, tmp_path, monkeypatch):
    config = validate({
        "device": "cpu", "threads": 1,
        "model": {"backbone": "resnet18", "decoder_channels": [16, 8, 8, 8, 8], "input_size": 32},
        "pretrain": {"batch_size": 8, "num_workers": 0,
                     "epochs": {"restoration_warmup": 3, "adversarial": 1},
                     "mocov2": {"epochs": 1, "queue_size": 16, "hidden_dim": 16, "out_dim": 8}},
    })
    pretrain("mocov2", "base", caches / "train.h5", caches / "val.h5", tmp_path / "base", None, None, config)

    original = DiRA.generator_losses
    calls = {"n": 0}

    def poisoned(self, stage, batch):
        losses = original(self, stage, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 4:  # 2 steps per epoch: the second step (index 1) of epoch 2
                losses.terms["res"] = losses.terms["res"] * float("nan")
        return losses

    monkeypatch.setattr(DiRA, "generator_losses", poisoned)
    with pytest.raises(TrainingDiverged, match=r"stage 'dir' epoch 2 step 1: res = nan"):
        pretrain("mocov2", "dir", caches / "train.h5", caches / "val.h5", tmp_path / "dir",
                 tmp_path / "base" / "method.pt", None, config)
    state = load_torch(tmp_path / ".state" / "dir" / "latest.pt")
    assert (state["stage_index"], state["next_epoch"]) == (0, 1)  # the end of epoch 1, as saved
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "dir" / "encoder.pt").exists()

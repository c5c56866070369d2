"""TransVW and DiRA_TransVW: the losses against their formulas, the staged runs, exports, crash and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from visual_word_toy import SHAPE, write_visual_words

from dira.config import load_config
from dira.data.cache import SplitCache
from dira.data.samples import StoredRows
from dira.data.visual_word_views import VisualWordBatch, visual_word_classes
from dira.io import load_torch
from dira.methods.dira import STAGES, build_dira
from dira.models.discriminator import PatchDiscriminator
from dira.models.unet3d import UNet3D, UNet3DClassifier, load_released
from dira.train.pretrain import stage_plan

WIDTH = 2
SETTINGS = {
    "device": "cpu", "threads": 1,
    "model3d": {"base_width": WIDTH},
    "pretrain": {
        "num_workers": 0,
        "transvw": {
            "epochs": 3, "batch_size": 4, "dira_epochs": {"restoration_warmup": 1, "adversarial": 1},
            # cheap distortions: the loop, not the transforms, is under test here
            "views": {"shuffling": {"blocks": 20, "block_divisor": 4},
                      "nonlinearity": {"reverse_prob": 0.5, "curve_points": 256}},
        },
    },
}


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    return write_visual_words(tmp_path_factory.mktemp("vw"), {"train": 12, "val": 6})


@pytest.fixture(scope="module")
def config():
    return load_config([json.dumps(SETTINGS)])


def _model(config, adversarial: bool, classes: int = 3):
    torch.manual_seed(0)
    return build_dira("transvw", adversarial, config["model3d"], config["pretrain"], {"classes": classes})


def _batch(classes: int = 3, n: int = 4):
    g = torch.Generator().manual_seed(1)
    return {"view": torch.rand(n, 1, *SHAPE, generator=g), "label": torch.arange(n) % classes,
            "target": torch.rand(n, 1, *SHAPE, generator=g)}


def test_the_losses_are_the_formulas_of_transvw_and_dira(config):
    model = _model(config, adversarial=True)
    batch = _batch()
    model.eval()
    losses = model.generator_losses(STAGES["dira"], batch)
    with torch.no_grad():
        features = model.unet.encode(batch["view"])
        probs = torch.softmax(model.method.head(features[-1]), dim=1)
        # eq. 9: -1/B Σ_b Σ_c Y_bc log P_bc with one-hot Y
        one_hot = F.one_hot(batch["label"], 3).float()
        dis = -(one_hot * probs.log()).sum(dim=1).mean()
        restored = torch.sigmoid(model.unet(batch["view"]))
        res = ((restored - batch["target"]) ** 2).mean()
        adv = ((model.discriminator(restored) - 1) ** 2).mean()  # LSGAN generator term: D(x') -> 1
    w = model.weights
    assert (w.discrimination, w.restoration, w.adversarial) == (1.0, 100.0, 1.0)  # paper-main §1, 3D
    for name, value in (("dis", dis), ("res", res), ("adv", adv)):
        assert torch.allclose(losses.terms[name], value, rtol=1e-5, atol=1e-7), name
    assert torch.allclose(losses.total, 1.0 * dis + 100.0 * res + 1.0 * adv, rtol=1e-5)


def test_transvw_alone_is_restorative_at_its_own_weights(config):
    plan = stage_plan("transvw", "base", config["pretrain"])
    assert [(p.stage.name, p.epochs) for p in plan] == [("dir", 3)]
    assert (plan[0].weights.discrimination, plan[0].weights.restoration) == (0.01, 1.0)  # the reference's
    dira = stage_plan("transvw", "dira", config["pretrain"])
    assert [(p.stage.name, p.epochs) for p in dira] == [("dir", 1), ("dira", 1)]
    assert dira[-1].weights.restoration == 100.0
    paper = stage_plan("transvw", "dira", load_config([])["pretrain"])
    assert [(p.stage.name, p.epochs) for p in paper] == [("dira", 200)]  # no warm-up: TransVW restores already


def test_the_3d_discriminator_scores_patches():
    d = PatchDiscriminator(widths=(64, 128, 256, 512), dims=3)
    assert d(torch.rand(1, 1, 32, 64, 64)).shape == (1, 1, 4, 8, 8)  # strides 2, 2, 2, 1


def test_visual_word_batches_are_seeded_views_of_their_cubes(words, config):
    cache = SplitCache(words / "train.h5")
    assert visual_word_classes(cache, SplitCache(words / "val.h5")) == 3
    rows = StoredRows(cache, labels=True)
    batch = {k: torch.stack([rows[i][k] for i in (5, 2)]) for k in ("image", "label", "index")}
    views = VisualWordBatch(config["pretrain"]["transvw"]["views"])
    first, again = (views(batch, torch.Generator().manual_seed(0), True) for _ in range(2))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert first["view"].shape == (2, 1, *SHAPE) and first["label"].tolist() == [5 % 3, 2 % 3]
    assert torch.allclose(first["target"][0, 0], torch.from_numpy(cache.image(5) / 255.0).float())
    assert not torch.equal(first["view"], first["target"])  # elastic deformation always applies
    other = views(batch, torch.Generator().manual_seed(1), True)
    assert not torch.equal(other["view"], first["view"])


def _command(words, out, variant="base", init=None):
    cmd = [sys.executable, "-m", "dira.cli", "pretrain", "--method", "transvw", "--variant", variant,
           "--train", str(words / "train.h5"), "--val", str(words / "val.h5"), "--out", str(out),
           "--config", json.dumps(SETTINGS)]
    return cmd + (["--init", str(init)] if init else [])


def _run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_transvw_then_dira_export_what_the_3d_tasks_load(words, tmp_path):
    base, dira = tmp_path / "transvw" / "base", tmp_path / "transvw" / "dira"
    _run(_command(words, base))
    meta = json.loads((base / "meta.json").read_text())
    assert meta["dims"] == 3 and meta["stages"] == [{"stage": "dir", "epochs": 3}]
    _run(_command(words, dira, "dira", init=base / "method.pt"))
    history = (dira / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["dir", "dira"]
    for out in (base, dira):
        unet = UNet3D(1, base_width=WIDTH, batch_stats_in_eval=True)
        assert load_released(unet, out / "unet.pt", skip_heads=False) == ([], [])
        classifier = UNet3DClassifier(1, base_width=WIDTH, batch_stats_in_eval=True)
        assert load_released(classifier, out / "encoder.pt", skip_heads=True).fresh == ["dense_1", "dense_2"]
    method = load_torch(dira / "method.pt")
    assert any(k.startswith("discriminator.") for k in method) and any(k.startswith("method.head.") for k in method)
    before, after = load_torch(base / "unet.pt"), load_torch(dira / "unet.pt")
    assert not torch.equal(before["up_tr64.ops.1.conv1.weight"], after["up_tr64.ops.1.conv1.weight"])


@pytest.mark.slow
def test_killed_3d_run_resumes_to_bitwise_identical_weights(words, tmp_path):
    reference, crashed = tmp_path / "reference" / "base", tmp_path / "crashed" / "base"
    _run(_command(words, reference))
    state = crashed.parent / ".state" / "base" / "latest.pt"
    proc = subprocess.Popen(_command(words, crashed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not state.exists() and time.monotonic() < deadline:  # epoch 1 saved: now inside epoch 2
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (crashed / "unet.pt").exists()
    done = _run(_command(words, crashed))
    assert "resuming" in done.stderr
    for name in ("encoder.pt", "unet.pt", "method.pt"):
        a, b = load_torch(reference / name), load_torch(crashed / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_cache_without_labels_is_refused(tmp_path, config):
    from visual_word_toy import ATTRS, GRID

    from dira.data.cache import AppendingCacheWriter
    from dira.errors import InputError

    with AppendingCacheWriter(tmp_path / "cubes.h5", SHAPE, {**ATTRS, "split": "train"}, dtype="uint8",
                              grid=GRID) as w:
        w.append(np.zeros((2, *SHAPE), np.uint8), ["a", "b"])
    with pytest.raises(InputError, match=r"cubes\.h5: no 'labels'"):
        StoredRows(SplitCache(tmp_path / "cubes.h5"), labels=True)

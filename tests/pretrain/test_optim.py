import math

import pytest
import torch
from torch import nn

from dira.config import validate
from dira.train.optim import LARS, build_optimizer, parameter_groups, schedule_factor, set_learning_rate


def _optimizer_settings(method):
    return validate({})["pretrain"][method]["optimizer"]


def test_lars_step_matches_the_trust_ratio_formula():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(4, 3))
    w.grad = torch.randn(4, 3)
    w0, g = w.detach().clone(), w.grad.clone()
    LARS([w], lr=0.5, momentum=0.9, weight_decay=0.01, eta=0.002, lars_adaptation=True).step()
    update = g + 0.01 * w0
    trust = 0.002 * w0.norm() / update.norm()
    torch.testing.assert_close(w.detach(), w0 - 0.5 * trust * update)


def test_lars_groups_without_adaptation_take_plain_momentum_steps():
    w = nn.Parameter(torch.ones(3))
    w.grad = torch.full((3,), 2.0)
    opt = LARS([{"params": [w], "lars_adaptation": False}], lr=0.1, momentum=0.9, weight_decay=0.0, eta=0.001,
               lars_adaptation=True)
    opt.step()
    opt.step()  # momentum buffer: 2, then 0.9 * 2 + 2 = 3.8
    torch.testing.assert_close(w.detach(), torch.full((3,), 1 - 0.1 * 2 - 0.1 * 3.8))


def test_barlow_twins_groups_exclude_biases_and_norms_and_scale_the_lr():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    groups = parameter_groups(model, _optimizer_settings("barlowtwins"), batch_size=512)
    by_kind = {len(g["params"][0].shape): g for g in groups}
    weights, biases = by_kind[2], by_kind[1]
    assert weights["base_lr"] == pytest.approx(0.2 * 2) and biases["base_lr"] == pytest.approx(0.0048 * 2)
    assert weights["lars_adaptation"] and not biases["lars_adaptation"]
    assert weights["weight_decay"] > 0 and biases["weight_decay"] == 0
    assert sum(len(g["params"]) for g in groups) == 4
    assert isinstance(build_optimizer(groups, _optimizer_settings("barlowtwins")), LARS)


def test_simsiam_fixed_parameters_keep_their_base_rate():
    head, predictor = nn.Linear(2, 2), nn.Linear(2, 2)
    settings = _optimizer_settings("simsiam")
    fixed = {id(p) for p in predictor.parameters()}
    opt = build_optimizer(parameter_groups([head, predictor], settings, 256, fixed), settings)
    set_learning_rate(opt, settings, epoch=5, step=0, steps_per_epoch=10, epochs=10)
    lrs = {g["fixed"]: g["lr"] for g in opt.param_groups}
    assert lrs[True] == pytest.approx(0.05)
    assert lrs[False] == pytest.approx(0.05 * 0.5)  # half-way through the cosine


def test_warmup_then_cosine_to_the_final_fraction():
    assert schedule_factor(0.0, 100, 10, 0.001) == 0
    assert schedule_factor(5.0, 100, 10, 0.001) == pytest.approx(0.5)
    assert schedule_factor(10.0, 100, 10, 0.001) == pytest.approx(1.0)
    assert schedule_factor(55.0, 100, 10, 0.001) == pytest.approx(0.001 + 0.999 * 0.5)
    assert schedule_factor(100.0, 100, 10, 0.001) == pytest.approx(0.001)
    # MoCo's per-epoch cosine without warm-up: lr · ½(1 + cos(π e / E))
    assert schedule_factor(3.0, 8, 0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 8)))


def test_epoch_schedules_ignore_the_step_and_step_schedules_do_not():
    layer = nn.Linear(2, 2)
    for schedule, expected in (("epoch", 1.0), ("step", 0.5 * (1 + math.cos(math.pi * 0.5 / 4)))):
        settings = {**_optimizer_settings("mocov2"), "schedule": schedule}
        opt = build_optimizer(parameter_groups(layer, settings, 256), settings)
        lr = set_learning_rate(opt, settings, epoch=0, step=5, steps_per_epoch=10, epochs=4)
        assert lr == pytest.approx(0.03 * expected)


def _first_lars_step(lr: float, eta: float) -> float:
    """Relative change ‖Δw‖ / ‖w‖ of a conv weight after one LARS step (no weight decay, empty momentum)."""
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(64, 32, 3, 3))
    w.grad = torch.randn_like(w) * 1e-3
    w0 = w.detach().clone()
    LARS([w], lr=lr, momentum=0.9, weight_decay=0.0, eta=eta, lars_adaptation=True).step()
    return ((w.detach() - w0).norm() / w0.norm()).item()


def test_a_lars_step_moves_a_layer_by_lr_times_eta_whatever_its_gradient():
    # Why Barlow Twins did not train in the demo (issue 11): the step is bounded by lr·η of the layer's norm.
    assert _first_lars_step(lr=0.2, eta=0.001) == pytest.approx(2e-4, rel=1e-4)
    assert _first_lars_step(lr=0.2 * 32 / 256, eta=0.001) == pytest.approx(2.5e-5, rel=1e-4)


@pytest.mark.parametrize("config, batch, steps, at_least", [
    # paper: ChestX-ray14's 75,312 training images at batch 256, one epoch of the 1000
    ("config/paper.yaml", 256, 75_312 // 256, 0.05),
    # demo (Barlow Twins runs with config/studies.yaml): ~570 training images at batch 32 (17 steps), 5 'base' epochs
    ("config/demo.yaml", 32, 17 * 5, 0.05),
])
def test_barlow_twins_lars_can_move_its_weights(config, batch, steps, at_least):
    from pathlib import Path

    from dira.config import run_config
    from dira.train.optim import base_learning_rate

    repo = Path(__file__).resolve().parents[2]
    settings = run_config([repo / config])["pretrain"]["barlowtwins"]["optimizer"]
    lr = base_learning_rate(settings["lr"], settings["lr_scaling"], batch)
    # the largest relative movement the run's steps allow (warm-up and cosine only lower it)
    assert steps * lr * settings["eta"] >= at_least, (config, lr)

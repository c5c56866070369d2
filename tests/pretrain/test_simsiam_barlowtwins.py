"""SimSiam and Barlow Twins as DiRA's discriminative branch: their recipes' details and that they train."""

import numpy as np
import pytest
import torch
from torchvision.models.resnet import BasicBlock
from toy import as_batch, train_on_fixed_batch

from dira.config import validate
from dira.losses import barlow_twins_loss, cross_correlation, simsiam_loss
from dira.methods import METHODS
from dira.methods.barlow_twins import BarlowTwins
from dira.methods.base import global_pool
from dira.methods.dira import STAGES, build_dira
from dira.methods.simsiam import SimSiam
from dira.train import optim

NEW_METHODS = ("simsiam", "barlowtwins")


def _embed(method, encoder, view):
    return method.projector(global_pool(encoder(view)[-1]))


def test_methods_are_registered_under_their_config_names_and_ask_for_global_batch_norm():
    assert METHODS["simsiam"] is SimSiam and METHODS["barlowtwins"] is BarlowTwins
    assert SimSiam.sync_batchnorm and BarlowTwins.sync_batchnorm


def test_paper_defaults_build_at_full_width():
    config = validate({})  # ResNet-50; on the meta device nothing of the 8192² projector is allocated
    with torch.device("meta"):
        simsiam = build_dira("simsiam", False, config["model"], config["pretrain"]).method
        barlow = build_dira("barlowtwins", False, config["model"], config["pretrain"]).method
    assert [m.out_features for m in simsiam.projector if isinstance(m, torch.nn.Linear)] == [2048, 2048, 2048]
    assert [m.out_features for m in simsiam.predictor if isinstance(m, torch.nn.Linear)] == [512, 2048]
    assert simsiam.fix_predictor_lr
    linears = [m for m in barlow.projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 8192), (8192, 8192), (8192, 8192)]
    assert all(m.bias is None for m in linears)
    assert barlow.lambd == 0.0051


@pytest.mark.parametrize("name", NEW_METHODS)
def test_output_is_a_scalar_loss_and_the_online_feature_maps_of_view_1(build, fixed_batch, name):
    model = build(name).train()
    encoder = model.unet.encoder
    view1, view2, _ = fixed_batch
    out = model.method(encoder, view1, view2)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert [f.shape[1] for f in out.features] == list(encoder.out_channels)
    with torch.no_grad():
        for got, expected in zip(out.features, encoder(view1), strict=True):
            torch.testing.assert_close(got, expected)


def test_simsiam_loss_uses_a_separate_pass_per_view(build, fixed_batch):
    model = build("simsiam").train()
    simsiam, encoder = model.method, model.unet.encoder
    view1, view2, _ = fixed_batch
    loss = simsiam(encoder, view1, view2).loss
    with torch.no_grad():  # each view normalised by its own batch statistics
        z1, z2 = _embed(simsiam, encoder, view1), _embed(simsiam, encoder, view2)
        expected = simsiam_loss(simsiam.predictor(z1), simsiam.predictor(z2), z1, z2)
        z = _embed(simsiam, encoder, torch.cat([view1, view2]))
        z1_joint, z2_joint = z.chunk(2)
        joint = simsiam_loss(simsiam.predictor(z1_joint), simsiam.predictor(z2_joint), z1_joint, z2_joint)
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, joint)
    assert -1.0 <= loss.item() <= 1.0


def test_simsiam_predictor_keeps_a_fixed_lr_and_the_projector_bias_stays_frozen(build, tiny_config, fixed_batch):
    model = build("simsiam").train()
    simsiam = model.method
    predictor = {id(p) for p in simsiam.predictor.parameters()}
    assert {id(p) for p in simsiam.fixed_lr_parameters()} == predictor
    groups = optim.parameter_groups(model.generator_modules(), tiny_config["pretrain"]["simsiam"]["optimizer"], 8,
                                    predictor)
    assert [{id(p) for p in g["params"]} for g in groups if g["fixed"]] == [predictor]

    frozen_bias = simsiam.projector[6].bias
    assert not frozen_bias.requires_grad
    assert all(p is not frozen_bias for g in groups for p in g["params"])
    simsiam(model.unet.encoder, *fixed_batch[:2]).loss.backward()
    assert frozen_bias.grad is None
    assert simsiam.projector[0].weight.grad.abs().sum() > 0

    unfixed = SimSiam(model.unet.encoder, 512, proj_dim=8, pred_dim=4, fix_predictor_lr=False)
    assert unfixed.fixed_lr_parameters() == []


def test_simsiam_starts_every_residual_block_as_its_shortcut(build):
    encoder = build("simsiam").unet.encoder
    blocks = [m for m in encoder.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8 and all(torch.all(b.bn2.weight == 0) for b in blocks)
    block = encoder.layer1[0].eval()  # no downsampling: out = relu(residual + x) = x for x >= 0
    x = torch.rand(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)
    # the other methods keep torchvision's default initialisation
    assert all(torch.all(b.bn2.weight == 1) for b in build("barlowtwins").unet.encoder.modules()
               if isinstance(b, BasicBlock))


def test_barlow_twins_standardises_with_batch_statistics_as_batch_norm_without_affine(build):
    barlow = build("barlowtwins").method
    z = 3.0 + 2.0 * torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    z64 = z.double().numpy()
    expected = (z64 - z64.mean(0)) / np.sqrt(z64.var(0) + 1e-5)  # numpy's var is the biased one
    for mode in (barlow.train, barlow.eval):  # no running statistics: validation standardises the same way
        mode()
        np.testing.assert_allclose(barlow.standardise(z).double().numpy(), expected, rtol=1e-5, atol=1e-5)
    assert not list(barlow.standardise.parameters()) and not list(barlow.standardise.buffers())


def test_barlow_twins_loss_is_eq_8_on_the_cross_correlation_of_the_standardised_projections(build, fixed_batch):
    model = build("barlowtwins").train()
    barlow, encoder = model.method, model.unet.encoder
    view1, view2, _ = fixed_batch
    loss = barlow(encoder, view1, view2).loss
    with torch.no_grad():
        z1, z2 = _embed(barlow, encoder, view1), _embed(barlow, encoder, view2)
        c = cross_correlation(barlow.standardise(z1), barlow.standardise(z2))
    assert c.shape == (32, 32)
    assert torch.all(c.abs() <= 1 + 1e-6)  # correlations, by Cauchy–Schwarz
    torch.testing.assert_close(loss, barlow_twins_loss(c, 0.0051))


def test_barlow_twins_loss_is_computed_from_what_reduce_returns(build, fixed_batch, monkeypatch):
    model = build("barlowtwins").train()
    barlow = model.method
    monkeypatch.setattr(barlow, "_reduce", lambda c: torch.eye(c.shape[0]))
    assert barlow(model.unet.encoder, *fixed_batch[:2]).loss.item() == 0.0


def test_barlow_twins_loss_stays_float32_under_autocast(build, fixed_batch):
    model = build("barlowtwins").train()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model.method(model.unet.encoder, *fixed_batch[:2])
    assert out.features[-1].dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32


@pytest.mark.parametrize("name", NEW_METHODS)
def test_eval_mode_changes_no_state(build, fixed_batch, name):
    model = build(name, discriminator=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        model.generator_losses(STAGES["dira"], as_batch(*fixed_batch))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    model.train()  # whereas a training step moves the batch-norm running statistics
    with torch.no_grad():
        model.generator_losses(STAGES["dira"], as_batch(*fixed_batch))
    assert not all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("stage", ["di", "dir", "dira"])
@pytest.mark.parametrize("name", NEW_METHODS)
def test_each_stage_trains_and_its_loss_goes_down_on_a_fixed_batch(build, fixed_batch, name, stage):
    model = build(name, discriminator=stage == "dira").train()
    history = train_on_fixed_batch(model, stage, fixed_batch)
    totals, discrimination = [h["total"] for h in history], [h["dis"] for h in history]
    # SimSiam's loss lies in [-1, 1] and may be negative, so the drop is absolute, not relative.
    assert np.mean(totals[-5:]) < np.mean(totals[:5]) - 0.2
    assert np.mean(discrimination[-5:]) < np.mean(discrimination[:5]) - 0.2

"""The Models Genesis 3D U-Net: shapes, the released key layout, loading released files, eval BN behaviour."""

import json

import pytest
import torch
from torch import nn

from dira.errors import InputError
from dira.models.unet3d import BatchNorm3d, UNet3D, UNet3DClassifier, load_released

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _level_keys(prefix):
    return [f"{prefix}.ops.{i}.{k}" for i in (0, 1)
            for k in ("conv1.weight", "conv1.bias", *(f"bn1.{b}" for b in BN_KEYS))]


# Written from the release's layout (Genesis_Chest_CT.pt without 'module.'), not from the model.
ENCODER_KEYS = [k for name in ("down_tr64", "down_tr128", "down_tr256", "down_tr512") for k in _level_keys(name)]
DECODER_KEYS = [k for name in ("up_tr256", "up_tr128", "up_tr64")
                for k in (f"{name}.up_conv.weight", f"{name}.up_conv.bias", *_level_keys(name))]
RELEASED_KEYS = [*ENCODER_KEYS, *DECODER_KEYS, "out_tr.final_conv.weight", "out_tr.final_conv.bias"]


class _Payload:
    """Stands for any pickled object: a weights-only load must refuse it."""


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return UNet3D(base_width=32, batch_stats_in_eval=False).eval()


@pytest.fixture(scope="module")
def release(unet):
    """A released-style checkpoint: DataParallel keys, the reference's wrapper entries."""
    state = {f"module.{k}": v.clone() for k, v in unet.state_dict().items()}
    return {"epoch": 7, "state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1.0}]}}


def _save(obj, path):
    torch.save(obj, path)
    return path


def test_state_dict_is_exactly_the_released_layout(unet):
    keys = list(unet.state_dict())
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted(RELEASED_KEYS)
    shapes = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert shapes["down_tr64.ops.0.conv1.weight"] == (32, 1, 3, 3, 3)
    assert shapes["down_tr512.ops.1.conv1.weight"] == (512, 256, 3, 3, 3)
    assert shapes["up_tr256.up_conv.weight"] == (512, 512, 2, 2, 2)  # ConvTranspose3d: (in, out, k, k, k)
    assert shapes["up_tr256.ops.0.conv1.weight"] == (256, 512 + 256, 3, 3, 3)
    assert shapes["up_tr128.ops.0.conv1.weight"] == (128, 256 + 128, 3, 3, 3)
    assert shapes["up_tr64.ops.0.conv1.weight"] == (64, 128 + 64, 3, 3, 3)
    assert shapes["out_tr.final_conv.weight"] == (1, 64, 1, 1, 1)


def test_output_keeps_the_crop_shape(unet):
    with torch.no_grad():
        assert unet(torch.rand(2, 1, 32, 64, 64)).shape == (2, 1, 32, 64, 64)
    model = UNet3D(3, base_width=32, batch_stats_in_eval=False).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 16, 32, 24)).shape == (1, 3, 16, 32, 24)


@pytest.mark.parametrize("shape", [(1, 1, 12, 32, 32), (1, 1, 16, 36, 32), (1, 16, 32, 32)])
def test_sizes_the_pools_cannot_halve_are_refused(unet, shape):
    with pytest.raises(ValueError, match=r"divisible by 8|\(batch, channels"):
        unet(torch.rand(*shape))


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_released_checkpoint_loads_strictly(tmp_path, unet, release, prefix):
    state = {k.removeprefix("module.") if not prefix else k: v for k, v in release["state_dict"].items()}
    path = _save({**release, "state_dict": state}, tmp_path / "Genesis_Chest_CT.pt")
    torch.manual_seed(1)
    model = UNet3D(base_width=32, batch_stats_in_eval=False)
    assert load_released(model, path, skip_heads=False) == ([], [])
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in model.state_dict().items())
    x = torch.rand(1, 1, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), unet(x))


def test_missing_keys_are_an_error_naming_the_file(tmp_path, release):
    state = {k: v for k, v in release["state_dict"].items() if not k.startswith("module.out_tr.")}
    path = _save({"state_dict": state}, tmp_path / "truncated.pt")
    with pytest.raises(InputError, match=r"truncated\.pt.*missing keys 2 \[out_tr\.final_conv\.weight"):
        load_released(UNet3D(base_width=32, batch_stats_in_eval=False), path, skip_heads=False)
    # skipping heads never excuses a hole inside a module the model has
    state = {k: v for k, v in release["state_dict"].items() if not k.endswith("ops.1.bn1.running_var")}
    path = _save({"state_dict": state}, tmp_path / "holes.pt")
    with pytest.raises(InputError, match=r"holes\.pt.*down_tr64\.ops\.1\.bn1\.running_var"):
        load_released(UNet3D(base_width=32, batch_stats_in_eval=False), path, skip_heads=True)


def test_extra_heads_are_ignored_only_when_asked(tmp_path, release):
    state = {**release["state_dict"], "module.cls_head.weight": torch.zeros(44, 1024)}  # TransVW-like extra head
    path = _save({"state_dict": state}, tmp_path / "TransVW_chest_ct.pt")
    with pytest.raises(InputError, match=r"TransVW_chest_ct\.pt.*unexpected keys 1 \[cls_head\.weight\]"):
        load_released(UNet3D(base_width=32, batch_stats_in_eval=False), path, skip_heads=False)
    assert load_released(UNet3D(base_width=32, batch_stats_in_eval=False), path, skip_heads=True) == (["cls_head"], [])


def test_misshapen_tensor_is_an_error_naming_key_and_file(tmp_path, release):
    path = _save(release, tmp_path / "Genesis_Chest_CT.pt")
    with pytest.raises(InputError, match=r"Genesis_Chest_CT\.pt: out_tr\.final_conv\.weight has shape \(1, 64"):
        load_released(UNet3D(2, base_width=32, batch_stats_in_eval=False), path, skip_heads=False)


def test_classifier_takes_the_encoder_of_a_release(tmp_path, unet, release):
    path = _save(release, tmp_path / "Genesis_Chest_CT.pt")
    with pytest.raises(InputError, match="unexpected keys"):
        load_released(UNet3DClassifier(2, base_width=32, batch_stats_in_eval=False), path, skip_heads=False)
    model = UNet3DClassifier(2, base_width=32, batch_stats_in_eval=False)
    dropped, fresh = load_released(model, path, skip_heads=True)
    assert dropped == ["out_tr", "up_tr128", "up_tr256", "up_tr64"]
    assert fresh == ["dense_1", "dense_2"]
    own = model.state_dict()
    assert sorted(k for k in own if not k.startswith("dense_")) == sorted(ENCODER_KEYS)
    assert all(torch.equal(own[k], unet.state_dict()[k]) for k in ENCODER_KEYS)


def test_pickled_objects_are_refused(tmp_path, release):
    path = _save({**release, "config": _Payload()}, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match=r"pickled\.pt: not a loadable weights-only checkpoint"):
        load_released(UNet3D(base_width=32, batch_stats_in_eval=False), path, skip_heads=False)
    path = _save({"state_dict": {**release["state_dict"], "module.note": "text"}}, tmp_path / "text.pt")
    with pytest.raises(InputError, match=r"text\.pt: state dict entry 'module\.note' is a str"):
        load_released(UNet3D(base_width=32, batch_stats_in_eval=False), path, skip_heads=False)


def _trained_pair(batch_stats_in_eval):
    """Our BN and torch's with identical, non-trivial running statistics."""
    torch.manual_seed(0)
    ours, ref = BatchNorm3d(4, batch_stats_in_eval=batch_stats_in_eval), nn.BatchNorm3d(4)
    with torch.no_grad():
        for bn in (ours, ref):
            bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
            bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    for _ in range(3):
        x = torch.randn(2, 4, 4, 4, 4) * 3 + 5
        ours(x), ref(x)
    return ours.eval(), ref.eval()


def test_batch_stats_in_eval_normalises_with_the_batch():
    ours, ref = _trained_pair(True)
    running = ours.running_mean.clone(), ours.running_var.clone()
    x = torch.randn(3, 4, 2, 4, 4) * 2 - 1
    mean = x.mean(dim=(0, 2, 3, 4), keepdim=True)
    var = x.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
    scale, shift = ours.weight.view(1, -1, 1, 1, 1), ours.bias.view(1, -1, 1, 1, 1)
    expected = (x - mean) / torch.sqrt(var + ours.eps) * scale + shift
    out = ours(x)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out, ref(x), atol=1e-2)  # running-statistics eval differs
    assert torch.equal(ours.running_mean, running[0]) and torch.equal(ours.running_var, running[1])


def test_without_the_flag_it_is_torchs_batchnorm():
    ours, ref = _trained_pair(False)
    x = torch.randn(3, 4, 2, 4, 4)
    assert torch.equal(ours(x), ref(x))
    ours.train(), ref.train()
    assert torch.equal(ours(x), ref(x))
    assert torch.equal(ours.running_mean, ref.running_mean) and torch.equal(ours.running_var, ref.running_var)
    assert set(ours.state_dict()) == set(ref.state_dict())


def test_unet_eval_with_batch_stats_matches_its_train_mode_output(unet):
    model = UNet3D(base_width=32, batch_stats_in_eval=True)
    model.load_state_dict(unet.state_dict())
    for m in model.modules():  # running statistics far from the batch's, as after pre-training on other data
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(4.0)
    x = torch.rand(2, 1, 16, 32, 32)
    with torch.no_grad():
        batch = model.eval()(x)
        assert torch.allclose(batch, model.train()(x), atol=1e-5)
        standard = UNet3D(base_width=32, batch_stats_in_eval=False)
        standard.load_state_dict(model.state_dict())
        assert not torch.allclose(batch, standard.eval()(x), atol=1e-3)


def test_classifier_gives_one_logit_row_per_volume():
    model = UNet3DClassifier(4, base_width=32, batch_stats_in_eval=False).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 16, 32, 32)).shape == (2, 4)
    assert model.dense_1.in_features == 512
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 1, 16, 30, 32))


def test_forward_backward_on_cpu_gives_finite_gradients():
    torch.manual_seed(0)
    model = UNet3D(base_width=32, batch_stats_in_eval=True).train()
    x = torch.rand(2, 1, 16, 32, 32)
    loss = nn.functional.mse_loss(torch.sigmoid(model(x)), x)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_import_official_converts_a_released_transvw_file(tmp_path):
    from dira.models.official import import_official

    torch.manual_seed(0)
    released = UNet3D(base_width=4, batch_stats_in_eval=False)
    state = {f"module.{k}": v for k, v in released.state_dict().items()}
    state["module.cls_head.weight"] = torch.zeros(44, 128)  # TransVW's head: not part of the U-Net
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "TransVW_chest_ct.pt")
    import_official(tmp_path / "TransVW_chest_ct.pt", tmp_path / "out", decoder_channels=[8, 8, 8, 8, 8])
    unet = UNet3D(base_width=4, batch_stats_in_eval=False)
    assert load_released(unet, tmp_path / "out" / "unet.pt", skip_heads=False) == ([], [])
    original = released.state_dict()
    assert all(torch.equal(value, original[key]) for key, value in unet.state_dict().items())
    classifier = UNet3DClassifier(1, base_width=4, batch_stats_in_eval=False)
    fresh = load_released(classifier, tmp_path / "out" / "encoder.pt", skip_heads=True).fresh
    assert fresh == ["dense_1", "dense_2"]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["dims"] == 3 and meta["dropped"] == ["cls_head"]

"""Checkpoints in the layouts of the public DiRA release convert to our encoder and U-Net files."""

import pytest
import torch
import torchvision

from dira.cli import main
from dira.config import load_config
from dira.io import load_torch
from dira.models.official import import_official
from dira.models.unet import UNet

# The release's decoder (smp Unet's default), which is also the paper's: the schema's default.
DECODER = load_config([])["model"]["decoder_channels"]


@pytest.fixture(scope="module")
def unet_state():
    torch.manual_seed(0)
    return UNet("resnet18", DECODER).state_dict()


def _release_layouts(unet_state):
    ddp = {f"module.encoder_q.backbone.{k}": v for k, v in unet_state.items()}
    ddp.update({"module.encoder_q.fc.0.weight": torch.zeros(2048, 512), "module.queue": torch.zeros(128, 8),
                "module.encoder_k.backbone.encoder.conv1.weight": torch.zeros(1)})
    return {
        "unet.pth": dict(unet_state),
        "checkpoint.pth": {"epoch": 400, "arch": "resnet50", "state_dict": ddp, "best_loss": 1.0},
    }


@pytest.mark.parametrize("layout", ["unet.pth", "checkpoint.pth"])
def test_release_unets_import_with_encoder_and_decoder(tmp_path, unet_state, layout):
    path = tmp_path / layout
    torch.save(_release_layouts(unet_state)[layout], path)
    assert main(["import-official", str(path), "--out", str(tmp_path / "out")]) == 0
    unet = load_torch(tmp_path / "out" / "unet.pt")
    model = UNet("resnet18", DECODER)
    model.load_state_dict(unet, strict=True)
    assert all(torch.equal(unet[k], unet_state[k]) for k in unet_state)
    resnet = torchvision.models.resnet18(weights=None)
    missing = resnet.load_state_dict(load_torch(tmp_path / "out" / "encoder.pt"), strict=False).missing_keys
    assert sorted(missing) == ["fc.bias", "fc.weight"]


def test_di_mode_resnet_with_mlp_head_imports_as_encoder_only(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    state = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    state.update({"fc.0.weight": torch.zeros(512, 512), "fc.2.weight": torch.zeros(128, 512)})
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "best_checkpoint.pth")
    assert main(["import-official", str(tmp_path / "best_checkpoint.pth"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "encoder.pt").is_file()
    unet = load_torch(tmp_path / "out" / "unet.pt")  # a whole U-Net whose decoder starts random
    UNet("resnet18", DECODER).load_state_dict(unet, strict=True)
    assert torch.equal(unet["encoder.conv1.weight"], state["conv1.weight"])
    assert "no decoder" in (tmp_path / "out" / "meta.json").read_text()


def test_encoder_only_release_gets_the_decoder_the_run_configures(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    torch.save({k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}, tmp_path / "resnet.pth")
    import_official(tmp_path / "resnet.pth", tmp_path / "out", decoder_channels=[32, 16, 16, 8, 8])
    UNet("resnet18", [32, 16, 16, 8, 8]).load_state_dict(load_torch(tmp_path / "out" / "unet.pt"), strict=True)


def test_foreign_checkpoint_is_refused_with_the_file_named(tmp_path, capsys):
    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    assert main(["import-official", str(tmp_path / "other.pth"), "--out", str(tmp_path / "out")]) == 2
    assert "other.pth" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

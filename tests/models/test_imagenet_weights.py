"""torchvision ImageNet files (with their 1000-class fc) as the encoder of the classifier and of the U-Net."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from dira.errors import InputError
from dira.models.classifier import build_classifier
from dira.models.resnet import infer_backbone
from dira.models.segmentation import build_segmentation_model
from dira.models.unet import UNet

DECODER_CHANNELS = [32, 16, 16, 8, 8]


def torchvision_file(path: Path, arch: str, seed: int = 7, drop: str = "") -> dict[str, torch.Tensor]:
    """torchvision's own state dict of ``arch`` as its ImageNet files are (fc included), saved with torch.save."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    with torch.no_grad():  # running statistics a fresh model would not have
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.num_batches_tracked.fill_(1000)
    state = {k: v for k, v in model.state_dict().items() if not (drop and k.endswith(drop))}
    torch.save(state, path)
    return state


@pytest.fixture
def imagenet_resnet18(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path / "resnet18-f37072fd.pth"
    return path, torchvision_file(path, "resnet18")


def assert_encoder_equals(loaded: dict[str, torch.Tensor], file_state: dict[str, torch.Tensor]) -> None:
    encoder = {k: v for k, v in file_state.items() if not k.startswith("fc.")}
    assert set(loaded) == set(encoder)
    for key, value in encoder.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_classifier_takes_the_imagenet_encoder_and_a_fresh_head(imagenet_resnet18):
    path, state = imagenet_resnet18
    model = build_classifier("resnet18", 14, path)
    assert_encoder_equals({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, state)
    assert model.fc.weight.shape == (14, 512) and torch.count_nonzero(model.fc.bias) == 0


def test_unet_encoder_takes_the_imagenet_weights_and_keeps_a_random_decoder(imagenet_resnet18):
    path, state = imagenet_resnet18
    torch.manual_seed(3)
    fresh = UNet("resnet18", DECODER_CHANNELS).state_dict()
    torch.manual_seed(3)
    model, loaded = build_segmentation_model("resnet18", DECODER_CHANNELS, path)
    assert loaded == "encoder"
    assert_encoder_equals(model.encoder.state_dict(), state)
    for key, value in model.state_dict().items():
        if not key.startswith("encoder."):
            torch.testing.assert_close(value, fresh[key], rtol=0, atol=0, msg=key)


def test_files_older_than_the_batch_norm_counter_load(tmp_path):
    path = tmp_path / "resnet18-old.pth"
    state = torchvision_file(path, "resnet18", drop="num_batches_tracked")
    model = build_classifier("resnet18", 3, path)
    torch.testing.assert_close(model.layer3[0].bn2.running_var, state["layer3.0.bn2.running_var"], rtol=0, atol=0)
    assert model.bn1.num_batches_tracked.item() == 0


def test_the_layout_names_the_backbone():
    for backbone in ("resnet18", "resnet34", "resnet50"):
        assert infer_backbone(getattr(torchvision.models, backbone)(weights=None).state_dict()) == backbone
    assert infer_backbone(UNet("resnet18", DECODER_CHANNELS).state_dict()) is None


@pytest.mark.parametrize("build", ["classifier", "segmentation"])
def test_another_backbone_is_refused_naming_the_file_and_what_it_is(tmp_path, build):
    path = tmp_path / "resnet50-0676ba61.pth"
    torchvision_file(path, "resnet50")
    with pytest.raises(InputError, match=re.escape(f"{path}: encoder weights do not fit the resnet18 encoder")) as err:
        if build == "classifier":
            build_classifier("resnet18", 14, path)
        else:
            build_segmentation_model("resnet18", DECODER_CHANNELS, path)
    assert "looks like a resnet50" in str(err.value) and "other shapes" in str(err.value)


def test_a_unet_checkpoint_is_no_classifier_encoder(tmp_path):
    path = tmp_path / "unet.pt"
    torch.save(UNet("resnet18", DECODER_CHANNELS).state_dict(), path)
    with pytest.raises(InputError, match=re.escape(f"{path}: encoder weights do not fit")) as err:
        build_classifier("resnet18", 14, path)
    assert "U-Net keys" in str(err.value) and "encoder.pt" in str(err.value)


@pytest.mark.parametrize(("payload", "problem"), [
    ("module", "not a loadable weights-only checkpoint"),
    ("checkpoint", "not a flat state dict: 'state_dict' holds OrderedDict, not a tensor"),
])
def test_pickled_models_and_training_checkpoints_are_refused(tmp_path, payload, problem):
    path = tmp_path / "weights.pth"
    model = torchvision.models.resnet18(weights=None)
    torch.save(model if payload == "module" else {"state_dict": model.state_dict(), "epoch": 3}, path)
    with pytest.raises(InputError, match=re.escape(f"{path}: {problem}")):
        build_classifier("resnet18", 14, path)
    with pytest.raises(InputError, match=re.escape(str(path))):
        build_segmentation_model("resnet18", DECODER_CHANNELS, path)

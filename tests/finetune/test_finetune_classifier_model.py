from __future__ import annotations

import re

import pytest
import torch

from dira.errors import InputError
from dira.io import save_torch
from dira.models.classifier import build_classifier
from dira.models.resnet import build_resnet, strip_fc


def test_random_classifier_has_fresh_head():
    torch.manual_seed(0)
    model = build_classifier("resnet18", 14, None)
    assert model.fc.weight.shape == (14, 512)
    assert torch.count_nonzero(model.fc.bias) == 0
    assert 0.008 < model.fc.weight.std().item() < 0.012
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 14)


def test_encoder_weights_are_loaded(tmp_path):
    torch.manual_seed(1)
    source = build_resnet("resnet18")
    with torch.no_grad():
        source.bn1.running_mean.uniform_()
    save_torch(tmp_path / "encoder.pt", strip_fc(source.state_dict()))

    torch.manual_seed(2)
    model = build_classifier("resnet18", 5, tmp_path / "encoder.pt")
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.bn1.running_mean, source.bn1.running_mean, rtol=0, atol=0)
    assert model.fc.out_features == 5


def test_weights_of_another_backbone_are_rejected(tmp_path):
    save_torch(tmp_path / "encoder.pt", strip_fc(build_resnet("resnet34").state_dict()))
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'encoder.pt'}: encoder weights do not fit")):
        build_classifier("resnet18", 14, tmp_path / "encoder.pt")


@pytest.mark.parametrize("content", ["tensor", "garbage"])
def test_files_that_are_not_state_dicts_are_rejected(tmp_path, content):
    path = tmp_path / "encoder.pt"
    if content == "tensor":
        save_torch(path, torch.zeros(3))
    else:
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=re.escape(str(path))):
        build_classifier("resnet18", 14, path)

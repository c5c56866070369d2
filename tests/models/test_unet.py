import pytest
import torch
import torchvision

from dira.config import load_config
from dira.models.discriminator import PatchDiscriminator
from dira.models.unet import UNet

DECODER = load_config([])["model"]["decoder_channels"]  # the paper's, smp's Unet default


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_encoder_state_dict_loads_strictly_into_torchvision(backbone):
    unet = UNet(backbone, DECODER)
    resnet = getattr(torchvision.models, backbone)(weights=None)
    result = resnet.load_state_dict(unet.encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    # and the loaded network computes the same features as our encoder
    unet.eval(), resnet.eval()
    x = torch.rand(2, 3, 64, 64)
    trunk = torch.nn.Sequential(*list(resnet.children())[:-2])
    assert torch.allclose(trunk(x), unet.encoder(x)[-1], atol=1e-6)


def test_unet_keys_follow_the_smp_layout_of_dira_releases():
    keys = set(UNet("resnet50", DECODER).state_dict())
    for expected in (
        "encoder.conv1.weight",
        "encoder.layer4.2.bn3.running_var",
        "decoder.blocks.0.conv1.0.weight",
        "decoder.blocks.0.conv1.1.num_batches_tracked",
        "decoder.blocks.4.conv2.1.bias",
        "segmentation_head.0.weight",
        "segmentation_head.0.bias",
    ):
        assert expected in keys
    assert not any(k.startswith("fc.") or ".fc." in k for k in keys)
    # smp's block 0 fuses the deepest map (2048) with the stride-16 skip (1024)
    assert UNet("resnet50", DECODER).state_dict()["decoder.blocks.0.conv1.0.weight"].shape == (256, 2048 + 1024, 3, 3)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_unet_restores_the_input_size_from_one_grey_channel(size):
    out = UNet("resnet18", DECODER)(torch.rand(2, 1, size, size))
    assert out.shape == (2, 1, size, size)


def test_patch_discriminator_scores_28x28_patches_of_a_224_image():
    assert PatchDiscriminator()(torch.rand(1, 1, 224, 224)).shape == (1, 1, 28, 28)

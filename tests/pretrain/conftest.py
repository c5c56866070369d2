import pytest
import torch

from dira.config import validate
from dira.methods.dira import build_dira


@pytest.fixture
def tiny_config():
    """Smallest settings that still exercise every part of the model."""
    return validate({
        "device": "cpu",
        "model": {"backbone": "resnet18", "decoder_channels": [32, 16, 16, 8, 8]},
        "pretrain": {
            "mocov2": {"queue_size": 32, "hidden_dim": 32, "out_dim": 16, "momentum": 0.99},
            "simsiam": {"proj_dim": 32, "pred_dim": 8},
            "barlowtwins": {"proj_dims": [32, 32, 32]},
        },
    })


@pytest.fixture
def fixed_batch():
    g = torch.Generator().manual_seed(0)
    view1 = torch.rand(8, 1, 32, 32, generator=g)
    view2 = (view1 + 0.05 * torch.randn(8, 1, 32, 32, generator=g)).clamp(0, 1)
    target = torch.rand(8, 1, 32, 32, generator=g)
    return view1, view2, target


@pytest.fixture
def build(tiny_config):
    def _build(method="mocov2", discriminator=False, seed=0):
        torch.manual_seed(seed)
        return build_dira(method, discriminator, tiny_config["model"], tiny_config["pretrain"])
    return _build

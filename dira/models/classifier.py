"""The fine-tuning classifier: a torchvision ResNet with a fresh linear head on the pooled features.

The head is a plain ``Linear`` producing logits (the loss applies the sigmoid); it starts from
N(0, 0.01) weights and zero bias as in BenchmarkTransferLearning, so a random and a pre-trained
initialisation differ only in the encoder.
"""

from __future__ import annotations

from pathlib import Path

import torchvision
from torch import nn

from dira.io import load_torch
from dira.models.resnet import build_resnet, load_encoder_weights


def build_classifier(backbone: str, num_classes: int,
                     encoder_weights: Path | None) -> torchvision.models.ResNet:
    """A ResNet classifier, its encoder loaded from an exported ``encoder.pt`` or a torchvision ImageNet file
    (whose 1000-class ``fc`` is dropped) when one is given."""
    model = build_resnet(backbone)
    if encoder_weights is not None:
        load_encoder_weights(model, load_torch(encoder_weights), source=str(encoder_weights))
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    nn.init.normal_(model.fc.weight, mean=0.0, std=0.01)
    nn.init.zeros_(model.fc.bias)
    return model

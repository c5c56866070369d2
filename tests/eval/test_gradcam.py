"""Grad-CAM on models whose answer is known."""

import pytest
import torch
from torch import nn

from dira.eval.gradcam import grad_cam
from dira.models.classifier import build_classifier

SIZE = 16


class QuadrantClassifier(nn.Module):
    """Class q reads only quadrant q: feature channel q is the image seen through that quadrant's window."""

    def __init__(self):
        super().__init__()
        half = SIZE // 2
        windows = torch.zeros(4, SIZE, SIZE)
        for q, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            windows[q, r * half:(r + 1) * half, c * half:(c + 1) * half] = 1
        self.register_buffer("windows", windows)
        self.features = nn.Identity()  # the layer Grad-CAM looks at
        self.head = nn.Linear(4, 4)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(4))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activation = self.features(x[:, :1] * self.windows)  # (N, 4, H, W)
        return self.head(activation.mean(dim=(2, 3)))


@pytest.mark.parametrize("quadrant", range(4))
def test_a_model_that_looks_at_one_quadrant_lights_that_quadrant(quadrant):
    model = QuadrantClassifier().eval()
    images = torch.rand(1, 3, SIZE, SIZE) + 0.5  # positive everywhere: all four quadrants carry signal
    cam = grad_cam(model, model.features, images, torch.tensor([quadrant]), relu=True)[0]
    assert cam.shape == (SIZE, SIZE)
    lit = cam > 1e-6
    assert torch.equal(lit, model.windows[quadrant].bool())


def test_each_sample_of_a_batch_gets_its_own_class():
    model = QuadrantClassifier().eval()
    images = torch.rand(4, 3, SIZE, SIZE) + 0.5
    classes = torch.tensor([3, 0, 2, 1])
    batched = grad_cam(model, model.features, images, classes, relu=True)
    for i in range(4):
        alone = grad_cam(model, model.features, images[i:i + 1], classes[i:i + 1], relu=True)[0]
        torch.testing.assert_close(batched[i], alone)
        assert torch.equal(batched[i] > 1e-6, model.windows[classes[i]].bool())


def test_resnet_maps_come_at_the_input_size_and_leave_no_gradients_behind():
    model = build_classifier("resnet18", 14, None).eval()
    images = torch.rand(2, 3, 64, 64)
    cams = grad_cam(model, model.layer4, images, torch.tensor([0, 5]), relu=True)
    assert cams.shape == (2, 64, 64) and (cams >= 0).all() and cams.dtype == torch.float32
    assert all(p.grad is None for p in model.parameters())


def test_training_mode_and_mismatched_classes_are_refused():
    model = QuadrantClassifier()
    with pytest.raises(ValueError, match="eval mode"):
        grad_cam(model.train(), model.features, torch.rand(1, 3, SIZE, SIZE), torch.tensor([0]), relu=True)
    with pytest.raises(ValueError, match="one class per image"):
        grad_cam(model.eval(), model.features, torch.rand(2, 3, SIZE, SIZE), torch.tensor([0]), relu=True)


def test_relu_off_keeps_evidence_against_the_class():
    model = QuadrantClassifier().eval()
    with torch.no_grad():
        model.head.weight.mul_(-1)  # each class now counts its quadrant against itself
    images = torch.rand(1, 3, SIZE, SIZE) + 0.5
    clipped = grad_cam(model, model.features, images, torch.tensor([1]), relu=True)[0]
    signed = grad_cam(model, model.features, images, torch.tensor([1]), relu=False)[0]
    assert torch.count_nonzero(clipped) == 0  # Grad-CAM proper: nothing speaks for the class
    assert torch.equal(signed < 0, model.windows[1].bool())  # the signed map still shows where the model looks

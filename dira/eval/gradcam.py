"""Grad-CAM (Selvaraju et al., ICCV 2017) over forward/backward hooks on one layer.

Written here rather than taken from the ``grad-cam`` package: the method is a dozen lines, the package
pulls in OpenCV and a test-time-augmentation library for features this pipeline does not use, and it
computes one target class per image, whereas the localization benchmark asks for a different class per
(image, box) pair — which this version does in one batched backward pass.

For each sample ``i`` and its class ``c_i``: the layer's activations ``A`` (C×h×w), the gradient of the
logit ``y_{c_i}`` with respect to them, channel weights = the spatial mean of that gradient, and
``relu(Σ_k w_k A_k)`` upsampled bilinearly to the input size. The model must be in eval mode so the
samples of a batch do not interact (batch-norm statistics), which makes one backward of the summed
selected logits give every sample its own gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grad_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor, classes: torch.Tensor, *,
             relu: bool) -> torch.Tensor:
    """Class activation maps (N, H, W) at the input's resolution, non-negative unless ``relu`` is off.

    ``images`` is the batch (N, C, H, W) as the model takes it, ``classes`` (N,) the logit index each
    sample's map explains. ``relu`` is ``localization.relu`` (true as published); False keeps the signed
    map (evidence against the class negative), for weakly trained models whose evidence for a class is
    negative everywhere, where Grad-CAM is all zero.
    """
    if model.training:
        raise ValueError("grad_cam needs the model in eval mode (batch norm would mix the samples)")
    if classes.shape != (images.shape[0],):
        raise ValueError(f"need one class per image: {tuple(classes.shape)} for {images.shape[0]} images")
    captured: dict[str, torch.Tensor] = {}

    def keep_activation(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = layer.register_forward_hook(keep_activation)
    try:
        with torch.enable_grad():
            images = images.detach().requires_grad_(True)  # gradients flow even through a frozen stem
            logits = model(images)
            selected = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()
            model.zero_grad(set_to_none=True)
            selected.backward()
    finally:
        handle.remove()
    if "activation" not in captured or "gradient" not in captured:
        raise RuntimeError("the target layer did not take part in the forward pass")
    activation, gradient = captured["activation"].detach(), captured["gradient"].detach()
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = (weights * activation).sum(dim=1, keepdim=True)
    cam = F.relu(cam) if relu else cam
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    model.zero_grad(set_to_none=True)
    return cam[:, 0].float()

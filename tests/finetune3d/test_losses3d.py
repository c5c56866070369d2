"""The 3D losses against their formulas, computed here independently with numpy."""

import numpy as np
import torch

from dira.config import load_config
from dira.methods.dira import build_dira
from dira.train.finetune.volume_classification import candidate_loss
from dira.train.finetune.volume_segmentation import dice_loss


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_segmentation_loss_is_one_minus_soft_dice_pooled_over_the_batch():
    rng = np.random.default_rng(0)
    logits, masks = rng.normal(size=(3, 1, 4, 8, 8)), (rng.random((3, 4, 8, 8)) > 0.6).astype(np.float64)
    p = _sigmoid(logits[:, 0])
    expected = 1 - (2 * (p * masks).sum() + 1) / (p.sum() + masks.sum() + 1)  # Models Genesis' dice_coef, smooth 1
    got = dice_loss(torch.from_numpy(logits), torch.from_numpy(masks))
    assert np.isclose(got.item(), expected, rtol=1e-10)


def test_candidate_loss_is_the_binary_cross_entropy_of_the_sigmoid():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(6, 1)) * 3, rng.integers(0, 2, size=(6, 1)).astype(np.float64)
    p = _sigmoid(logits)
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean()
    got = candidate_loss(torch.from_numpy(logits), torch.from_numpy(labels))
    assert np.isclose(got.item(), expected, rtol=1e-8)


def test_the_3d_discriminator_loss_is_the_least_squares_gan_loss():
    config = load_config(['{"model3d": {"base_width": 2}}'])
    torch.manual_seed(0)
    model = build_dira("transvw", True, config["model3d"], config["pretrain"], {"classes": 3})
    real, fake = torch.rand(2, 1, 8, 16, 16), torch.rand(2, 1, 8, 16, 16)
    with torch.no_grad():
        d_real, d_fake = model.discriminator(real).numpy(), model.discriminator(fake).numpy()
    expected = 0.5 * (((d_real - 1) ** 2).mean() + (d_fake ** 2).mean())  # D step: real -> 1, restored -> 0
    assert np.isclose(model.discriminator_loss(real, fake).item(), expected, rtol=1e-5)

"""Each loss against an independent float64 computation of its formula."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dira.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    infonce_logits,
    infonce_loss,
    restoration_loss,
)


def test_infonce_matches_the_formula_with_queue_negatives():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    k = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    queue = F.normalize(torch.randn(8, 11, generator=g), dim=0)
    tau = 0.2
    expected = []
    for i in range(5):
        pos = math.exp(float(q[i] @ k[i]) / tau)
        neg = sum(math.exp(float(q[i] @ queue[:, j]) / tau) for j in range(11))
        expected.append(-math.log(pos / (pos + neg)))
    assert infonce_loss(q, k, queue, tau).item() == pytest.approx(np.mean(expected), rel=1e-5)
    logits = infonce_logits(q, k, queue, tau)
    assert logits.shape == (5, 12)
    assert logits[2, 0].item() == pytest.approx(float(q[2] @ k[2]) / tau, rel=1e-6)
    assert logits[2, 4].item() == pytest.approx(float(q[2] @ queue[:, 3]) / tau, rel=1e-6)


def test_restoration_loss_is_the_mean_squared_error():
    a, b = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    expected = np.mean((a.double().numpy() - b.double().numpy()) ** 2)
    assert restoration_loss(a, b).item() == pytest.approx(expected, rel=1e-6)


def test_lsgan_losses_are_least_squares_against_one_and_zero():
    real, fake = torch.randn(3, 1, 5, 5), torch.randn(3, 1, 5, 5)
    r, f = real.double().numpy(), fake.double().numpy()
    assert generator_adversarial_loss(fake, "lsgan").item() == pytest.approx(np.mean((f - 1) ** 2), rel=1e-6)
    expected_d = 0.5 * (np.mean((r - 1) ** 2) + np.mean(f**2))
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx(expected_d, rel=1e-6)


def test_bce_losses_are_the_log_likelihood_of_the_paper():
    real, fake = torch.randn(3, 1, 5, 5), torch.randn(3, 1, 5, 5)
    sig = lambda x: 1 / (1 + np.exp(-x.double().numpy()))  # noqa: E731
    expected_g = np.mean(-np.log(sig(fake)))
    expected_d = 0.5 * (np.mean(-np.log(sig(real))) + np.mean(-np.log(1 - sig(fake))))
    assert generator_adversarial_loss(fake, "bce").item() == pytest.approx(expected_g, rel=1e-5)
    assert discriminator_loss(real, fake, "bce").item() == pytest.approx(expected_d, rel=1e-5)


def test_unknown_adversarial_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        generator_adversarial_loss(torch.zeros(1), "wgan")

"""SimSiam's and Barlow Twins' losses against independent float64 computations of eq. 6–8."""

import numpy as np
import pytest
import torch

from dira.losses import barlow_twins_loss, cross_correlation, negative_cosine, simsiam_loss


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_negative_cosine_is_minus_the_mean_cosine():
    p, z = _randn(6, 10, seed=0), _randn(6, 10, seed=1)
    expected = -np.mean([_cos(p[i].double().numpy(), z[i].double().numpy()) for i in range(6)])
    assert negative_cosine(p, z).item() == pytest.approx(expected, rel=1e-5)
    assert negative_cosine(p, 3.0 * p).item() == pytest.approx(-1.0, abs=1e-6)  # scale-free, minimum at alignment


def test_negative_cosine_stops_the_gradient_to_the_target():
    p, z = _randn(4, 5, seed=2).requires_grad_(), _randn(4, 5, seed=3).requires_grad_()
    negative_cosine(p, z).backward()
    assert z.grad is None
    assert p.grad is not None and p.grad.abs().sum() > 0


def test_simsiam_loss_is_the_symmetrised_distance_of_each_prediction_to_the_other_projection():
    p1, p2, z1, z2 = (_randn(5, 8, seed=s).double().numpy() for s in range(4, 8))
    d12 = -np.mean([_cos(p1[i], z2[i]) for i in range(5)])
    d21 = -np.mean([_cos(p2[i], z1[i]) for i in range(5)])
    expected = 0.5 * (d12 + d21)
    tensors = [torch.from_numpy(a).float() for a in (p1, p2, z1, z2)]
    assert simsiam_loss(*tensors).item() == pytest.approx(expected, rel=1e-5)


def test_simsiam_loss_sends_gradient_only_through_the_predictions():
    p1, p2, z1, z2 = (_randn(4, 6, seed=s).requires_grad_() for s in range(8, 12))
    simsiam_loss(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_cross_correlation_averages_products_over_the_batch():
    z1, z2 = _randn(12, 5, seed=13), _randn(12, 4, seed=14)
    a, b = z1.double().numpy(), z2.double().numpy()
    expected = np.array([[np.mean(a[:, i] * b[:, j]) for j in range(4)] for i in range(5)])
    c = cross_correlation(z1, z2)
    assert c.shape == (5, 4)
    np.testing.assert_allclose(c.double().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_barlow_twins_loss_is_invariance_plus_weighted_redundancy():
    c = 0.3 * _randn(6, 6, seed=15)
    lambd = 0.0051
    c64 = c.double().numpy()
    invariance = sum((1 - c64[i, i]) ** 2 for i in range(6))
    redundancy = sum(c64[i, j] ** 2 for i in range(6) for j in range(6) if i != j)
    assert barlow_twins_loss(c, lambd).item() == pytest.approx(invariance + lambd * redundancy, rel=1e-5)
    assert barlow_twins_loss(c, 0.0).item() == pytest.approx(invariance, rel=1e-5)
    assert barlow_twins_loss(torch.eye(6), lambd).item() == 0.0  # zero exactly at the identity

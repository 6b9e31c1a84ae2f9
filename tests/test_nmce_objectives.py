"""Exact checks of the coding-rate objectives (thesis eqs. 5.2-5.5): direct formulas, invariances, limits, gradients."""
import pytest
import torch
import torch.nn.functional as F

from entropy_mcmc.clustering.coding_rate import (cluster_coding_rate, coding_rate, coding_rate_reduction, nmce_loss,
                                                 tcr_loss, view_similarity)


def _sphere(m, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(m, d, generator=g, dtype=dtype), dim=1)


def _direct_rate(z, eps_sq):
    m, d = z.shape
    return 0.5 * torch.logdet(torch.eye(d, dtype=z.dtype) + d / (m * eps_sq) * z.T @ z)


@pytest.mark.parametrize("m,d", [(40, 6), (5, 12)])  # d <= m uses Z^T Z, d > m the m x m Gram
@pytest.mark.parametrize("eps_sq", [0.01, 0.5])
def test_coding_rate_matches_direct_formula(m, d, eps_sq):
    z = _sphere(m, d, 0)
    torch.testing.assert_close(coding_rate(z, eps_sq), _direct_rate(z, eps_sq), rtol=1e-12, atol=1e-12)


def test_coding_rate_is_invariant_to_rotations_and_row_order():
    z = _sphere(30, 8, 1)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(3))
    r = coding_rate(z)
    torch.testing.assert_close(coding_rate(z @ q), r, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(coding_rate(z[perm]), r, rtol=1e-12, atol=1e-12)
    # a change that is not a rotation does change it
    assert abs(float(coding_rate(z * torch.linspace(0.5, 1.5, 8, dtype=torch.float64)) - r)) > 1e-3


def test_float32_agrees_with_float64():
    z = _sphere(256, 16, 4)
    pi = torch.softmax(torch.randn(256, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64), 1)
    torch.testing.assert_close(coding_rate(z.float()).double(), coding_rate(z), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cluster_coding_rate(z.float(), pi.float()).double(), cluster_coding_rate(z, pi),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m,d", [(60, 5), (9, 16)])
def test_cluster_rate_matches_direct_per_cluster_sum(m, d):
    z = _sphere(m, d, 6)
    labels = torch.arange(m) % 3
    # sum_j (m_j / 2m) logdet(I + d/(m_j eps^2) Z_j^T Z_j) = sum_j (m_j / m) R(Z_j)
    expected = sum((labels == j).sum() / m * _direct_rate(z[labels == j], 0.01) for j in range(3))
    torch.testing.assert_close(cluster_coding_rate(z, labels), expected, rtol=1e-7, atol=1e-7)
    # the same with a one-hot membership matrix
    torch.testing.assert_close(cluster_coding_rate(z, F.one_hot(labels, 3).double()), expected, rtol=1e-7, atol=1e-7)


def test_rate_reduction_is_zero_for_one_cluster_and_positive_for_separated_subspaces():
    z = _sphere(100, 8, 7)
    assert abs(float(coding_rate_reduction(z, torch.zeros(100, dtype=torch.long)))) < 1e-6
    assert abs(float(coding_rate_reduction(z, torch.ones(100, 1, dtype=torch.float64)))) < 1e-6
    # two clusters on orthogonal 4-d subspaces of R^8
    g = torch.Generator().manual_seed(8)
    a = F.pad(torch.randn(50, 4, generator=g, dtype=torch.float64), (0, 4))
    b = F.pad(torch.randn(50, 4, generator=g, dtype=torch.float64), (4, 0))
    zs = F.normalize(torch.cat([a, b]), dim=1)
    right = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    wrong = torch.randperm(100, generator=g) % 2
    dr_right, dr_wrong = float(coding_rate_reduction(zs, right)), float(coding_rate_reduction(zs, wrong))
    assert dr_right > 1.0                     # ~ log of the volume gained by separating the subspaces
    assert dr_right > dr_wrong + 1.0 and dr_wrong > -1e-9


def test_gradients_match_finite_differences():
    z = _sphere(12, 4, 9).requires_grad_()
    logits = torch.randn(12, 3, generator=torch.Generator().manual_seed(10), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: coding_rate(x, 0.1), (z,))
    assert torch.autograd.gradcheck(lambda x, l: cluster_coding_rate(x, torch.softmax(l, 1), 0.1), (z, logits))
    zw = _sphere(5, 9, 11).requires_grad_()  # the m x m branch
    lw = torch.randn(5, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, l: cluster_coding_rate(x, torch.softmax(l, 1), 0.1), (zw, lw))
    views = torch.randn(2, 10, 4, generator=torch.Generator().manual_seed(13), dtype=torch.float64,
                        requires_grad=True)
    probs = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(14), dtype=torch.float64,
                        requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, p: nmce_loss(v, torch.softmax(p, -1), 0.1, lam=3.0, gamma=0.7).loss,
                                    (views, probs))
    assert torch.autograd.gradcheck(lambda v: tcr_loss(v, 0.1, lam=3.0).loss, (views,))


def test_tcr_and_nmce_losses_follow_their_equations():
    views = torch.randn(2, 20, 6, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    probs = torch.softmax(torch.randn(2, 20, 4, generator=torch.Generator().manual_seed(16), dtype=torch.float64), -1)
    z = F.normalize(views.mean(0), dim=1)
    sim = F.cosine_similarity(views[0], views[1], dim=1).mean()
    torch.testing.assert_close(view_similarity(views), sim)
    torch.testing.assert_close(tcr_loss(views, 0.01, lam=5.0).loss, -coding_rate(z) - 5.0 * sim)
    parts = nmce_loss(views, probs, 0.01, lam=5.0, gamma=0.5)
    torch.testing.assert_close(parts.loss, 0.5 * cluster_coding_rate(z, probs.mean(0)) - coding_rate(z) - 5.0 * sim)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        coding_rate(torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match=r"\[m, d\]"):
        coding_rate(torch.ones(3))
    with pytest.raises(TypeError):
        coding_rate(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="rows"):
        cluster_coding_rate(torch.ones(4, 2), torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        cluster_coding_rate(torch.ones(4, 2), torch.zeros(4))

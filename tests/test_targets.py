"""Targets: energies against closed forms, analytic gradients against autograd, exact samplers, registry."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from entropy_mcmc.targets import Funnel, GaussianMixture, Target, get_target, load_dataset, target_names


def autograd_grad(t, x):
    return Target.energy_and_grad(t, x)[1]


@pytest.mark.parametrize("name", ["icg50", "scg2", "funnel1-100", "funnel3-20", "mog2", "german", "australian",
                                  "heart"])
def test_gradients_match_autograd_in_both_dtypes(name):
    t = get_target(name)
    for dtype in (torch.float32, torch.float64):
        x = 0.3 * torch.randn((5,) + tuple(t.event_shape), generator=torch.Generator().manual_seed(0), dtype=dtype)
        u, g = t.energy_and_grad(x)
        assert u.shape == (5,) and u.dtype == dtype and g.dtype == dtype
        torch.testing.assert_close(g, autograd_grad(t, x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(u, t.energy(x))


def test_gaussian_energies_match_scipy_up_to_a_constant():
    for name in ("icg50", "scg2"):
        t = get_target(name)
        x = t.sample(6, torch.Generator().manual_seed(1), dtype=torch.float64)
        lp = stats.multivariate_normal(t.mean.numpy(), t.cov.numpy()).logpdf(x.numpy())
        diff = -t.energy(x).numpy() - lp
        np.testing.assert_allclose(diff, diff[0], rtol=0, atol=1e-8)


def test_icg_and_scg_definitions():
    icg = get_target("icg50")
    np.testing.assert_allclose(icg.std.pow(2).numpy(), np.logspace(-2, 2, 50))
    scg = get_target("scg2")
    np.testing.assert_allclose(np.linalg.eigvalsh(scg.cov.numpy()), [1e-1, 1e2])
    np.testing.assert_allclose(scg.cov[0, 1].item(), (1e2 - 1e-1) / 2)


def test_funnel_density_and_moments():
    t = Funnel(5, 3.0)
    x = t.sample(7, torch.Generator().manual_seed(2), dtype=torch.float64)
    lp = stats.norm(0, 3).logpdf(x[:, 0]) + stats.norm(0, np.exp(-x[:, :1].numpy())).logpdf(x[:, 1:]).sum(1)
    diff = -t.energy(x).numpy() - lp
    np.testing.assert_allclose(diff, diff[0], atol=1e-8)
    draws = Funnel(3, 1.0).sample(400000, torch.Generator().manual_seed(3), dtype=torch.float64)
    assert abs(draws[:, 0].std().item() - 1.0) < 0.01
    assert abs(draws[:, 1].std().item() / math.exp(1.0) - 1) < 0.05
    assert get_target("funnel3-20").std[0] == 3.0 and get_target("funnel1-100").dim == 100


def test_mixture_energy_matches_scipy_and_moments():
    means = torch.tensor([[-2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    t = GaussianMixture(means, torch.tensor([0.5, 1.0, 0.3]), torch.tensor([0.2, 0.5, 0.3]))
    x = torch.randn(8, 2, dtype=torch.float64)
    p = sum(w * stats.multivariate_normal(m.numpy(), s ** 2 * np.eye(2)).pdf(x.numpy())
            for w, m, s in zip([0.2, 0.5, 0.3], means.double(), [0.5, 1.0, 0.3]))
    np.testing.assert_allclose(-t.energy(x).numpy(), np.log(p), atol=1e-10)
    draws = t.sample(400000, torch.Generator().manual_seed(0), dtype=torch.float64)
    np.testing.assert_allclose(draws.mean(0).numpy(), t.mean.numpy(), atol=0.01)
    np.testing.assert_allclose(draws.std(0).numpy(), t.std.numpy(), atol=0.01)


def test_blr_design_and_energy():
    x, y = load_dataset("german")
    assert x.shape == (1000, 25) and y.shape == (1000,)
    np.testing.assert_allclose(x[:, 0], 1.0)
    np.testing.assert_allclose(x[:, 1:].mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(x[:, 1:].std(0), 1, atol=1e-10)
    t = get_target("german")
    w = torch.randn(3, 25, dtype=torch.float64)
    logits = w.numpy() @ x.T
    ll = (y * logits - np.logaddexp(0, logits)).sum(1)
    np.testing.assert_allclose(t.energy(w).numpy(), -ll + 0.5 * (w.numpy() ** 2).sum(1), rtol=1e-10)
    assert get_target("australian").dim == 15 and get_target("heart").dim == 14


@pytest.mark.parametrize("chains", [1, 40, 45])
def test_blr_sliced_evaluation_matches_the_formula(chains):
    """Chains evaluated in slices of 16 (the last one short): energy, gradient and gradient alone against
    the numpy formula, dU/dw = X^T (sigmoid(X w) - y) + w; a slice written to the wrong rows fails."""
    x, y = load_dataset("heart")
    t = get_target("heart")
    t.SLICE_ABOVE, t.SLICE_ELEMENTS = 0, 16 * x.shape[0]
    assert t._slice_size(chains) == 16
    w = torch.randn(chains, t.dim, generator=torch.Generator().manual_seed(chains), dtype=torch.float64)
    logits = w.numpy() @ x.T
    u = -(y * logits - np.logaddexp(0, logits)).sum(1) + 0.5 * (w.numpy() ** 2).sum(1)
    g = (1 / (1 + np.exp(-logits)) - y) @ x + w.numpy()
    energy, grad = t.energy_and_grad(w)
    np.testing.assert_allclose(energy.numpy(), u, rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), g, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(t.grad(w).numpy(), g, rtol=1e-9, atol=1e-9)


def test_registry_and_errors():
    assert {"icg50", "scg2", "funnel1-100", "funnel3-20", "german", "australian", "heart"} <= set(target_names())
    assert get_target("funnel2-7").dim == 7 and get_target("icg4").dim == 4
    with pytest.raises(ValueError, match="unknown target 'nope'"):
        get_target("nope")
    with pytest.raises(ValueError, match="dim >= 2"):
        Funnel(1)
    with pytest.raises(ValueError, match="labels"):
        from entropy_mcmc.targets import LogisticRegression

        LogisticRegression(np.ones((3, 2)), np.array([0, 2, 1]))

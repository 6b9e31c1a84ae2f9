"""Score-matching losses against closed forms on Gaussian data N(m, s^2 I), and the energy networks.

For the isotropic energy |x - mu|^2 / (2 tau^2), every loss is a weighted least-squares problem in
(a, c) = (sigma_0^2 / tau^2, a mu) (MDSM/DSM) or (1/tau^2, mu/tau^2) (ESM), so the empirical minimiser on a
fixed sample is known exactly, and its spread around the population minimiser (`gaussian_minimiser`) follows
from the delta method: the tolerances below are 5 of those standard errors.
"""
import math

import pytest
import torch

from entropy_mcmc.ebm_training.energy_target import EnergyTarget
from entropy_mcmc.ebm_training.losses import (NoiseLevels, dsm_loss, energy_and_input_grad, esm_loss,
                                              gaussian_minimiser, mdsm_loss, ssm_loss)
from entropy_mcmc.ebm_training.networks import (GaussianEnergy, MLPEnergy, QuadraticHead, ResNetEnergy,
                                                build_network, network_preset)

pytestmark = pytest.mark.usefixtures("one_thread")
D, N, S = 2, 8000, 0.5
M = torch.tensor([1.0, -2.0], dtype=torch.float64)
SIGMA0 = 0.1


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    return M + S * torch.randn(N, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def fit(loss_fn, steps=2):
    model = GaussianEnergy(D).double()
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=200, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-13, tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return model


def flipped_mdsm(model, x, sigmas, sigma0, generator):
    """The sign error x~ - x in place of x - x~ in eq. 3.7."""
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x_noisy = x + sigmas[:, None] * z
    _, g, _ = energy_and_input_grad(model, x_noisy)
    return (sigmas.pow(-2) * (x_noisy - x + sigma0 ** 2 * g).pow(2).sum(1)).mean()


def denoising_fit_check(data, sigmas, weights, tau2):
    """The exact weighted least-squares minimiser on the test's noise draw, and the delta-method SE of tau^2."""
    z = torch.randn(data.shape, generator=torch.Generator().manual_seed(1), dtype=data.dtype)
    u = sigmas[:, None] * z
    xn = data + u
    # residual = a xn - c - u over (a, c): weighted least squares
    w = weights.sqrt()
    rows = torch.cat([(w[:, None, None] * xn[:, :, None]),
                      (-w[:, None, None] * torch.eye(D, dtype=data.dtype).expand(N, D, D))], 2).reshape(N * D, 1 + D)
    sol = torch.linalg.lstsq(rows, (w[:, None] * u).reshape(-1, 1)).solution.flatten()
    a_hat = float(sol[0])
    mu_hat = sol[1:] / a_hat
    wc = xn - mu_hat
    f = weights * (u * wc).sum(1)
    g = weights * wc.pow(2).sum(1)
    se_a = float((f - a_hat * g).std() * math.sqrt(N) / g.sum())
    return SIGMA0 ** 2 / a_hat if tau2 else a_hat, mu_hat, SIGMA0 ** 2 / a_hat ** 2 * se_a


@pytest.mark.parametrize("draw", ["spaced"])
def test_mdsm_recovers_closed_form_minimiser_and_sign_error_fails(data, draw):
    levels = NoiseLevels(0.1, 3.0, "geometric", draw)
    sigmas = levels(N, data)
    loss = lambda m: mdsm_loss(m, data, sigmas, SIGMA0, generator=torch.Generator().manual_seed(1))  # noqa: E731
    model = fit(loss)
    tau2_hat, mu_hat, se = denoising_fit_check(data, sigmas, sigmas.pow(-2), True)
    # the optimizer reaches the exact minimiser of the empirical loss
    assert abs(model.var.item() - tau2_hat) < 1e-6 * tau2_hat
    assert torch.allclose(model.mean.detach(), mu_hat, atol=1e-6)
    # which lies within 5 SE of the population minimiser sigma_0^2 sum l (sigma^2 + s^2) / sum l sigma^2
    expected = gaussian_minimiser("mdsm", S ** 2, SIGMA0, sigmas.tolist())
    assert abs(tau2_hat - expected) < 5 * se, (tau2_hat, expected, se)
    # mu_hat is the l-weighted mean of x + (1 - 1/a) u: its SE per coordinate
    a = SIGMA0 ** 2 / tau2_hat
    w = sigmas.pow(-2)
    se_mu = float((w.pow(2) * (S ** 2 + (1 - 1 / a) ** 2 * sigmas ** 2)).sum().sqrt() / w.sum())
    assert (model.mean.detach() - M).abs().max() < 5 * se_mu
    # ... which is not the smoothed density s^2 + sigma_0^2 (the appendix B.1 approximation)
    assert expected < 0.5 * (S ** 2 + SIGMA0 ** 2)

    broken = fit(lambda m: flipped_mdsm(m, data, sigmas, SIGMA0, torch.Generator().manual_seed(1)))
    assert not abs(broken.var.item() - expected) < 5 * se


@pytest.mark.parametrize("sigma", [0.1, 0.3])
def test_dsm_recovers_the_smoothed_gaussian(data, sigma):
    global SIGMA0
    model = fit(lambda m: dsm_loss(m, data, sigma, generator=torch.Generator().manual_seed(1)))
    saved, SIGMA0 = SIGMA0, sigma
    try:
        sig = torch.full((N,), sigma, dtype=torch.float64)
        tau2_hat, _, se = denoising_fit_check(data, sig, torch.ones(N, dtype=torch.float64), True)
    finally:
        SIGMA0 = saved
    assert abs(model.var.item() - tau2_hat) < 1e-6 * tau2_hat
    assert abs(tau2_hat - gaussian_minimiser("dsm", S ** 2, sigma)) < 5 * se


def test_mdsm_at_one_level_is_dsm_scaled(data):
    """With every level at sigma_0, eq. 3.7 is eq. 3.3 times l(sigma_0) = 1/sigma_0^2, to rounding."""
    model = MLPEnergy(2, 16, 2).double()
    x = data[:256]
    sig = torch.full((256,), SIGMA0, dtype=torch.float64)
    a = mdsm_loss(model, x, sig, SIGMA0, generator=torch.Generator().manual_seed(3))
    b = dsm_loss(model, x, SIGMA0, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b / SIGMA0 ** 2, rtol=1e-12)


def test_esm_minimiser_is_the_sample_variance(data):
    model = fit(lambda m: esm_loss(m, data))
    centered = data - data.mean(0)
    assert abs(model.var.item() - float(centered.pow(2).mean())) < 1e-7
    assert torch.allclose(model.mean.detach(), data.mean(0), atol=1e-7)


def test_ssm_recovers_variance_within_mcse(data):
    gen_seed = 5
    model = fit(lambda m: ssm_loss(m, data, generator=torch.Generator().manual_seed(gen_seed)))
    v = torch.sign(torch.randn((1, N, D), generator=torch.Generator().manual_seed(gen_seed), dtype=data.dtype))[0]
    proj2 = ((data - model.mean.detach()) * v).sum(1).pow(2)
    se = float(proj2.std() / (D * math.sqrt(N)))
    assert abs(model.var.item() - float(proj2.mean() / D)) < 1e-6
    assert abs(model.var.item() - gaussian_minimiser("ssm", S ** 2)) < 5 * se


def test_ssm_over_all_sign_vectors_is_exact_score_matching():
    """Averaged over the 2^d Rademacher directions, v^T H v averages to tr H and (v.g)^2 to |g|^2 exactly."""
    torch.manual_seed(0)
    model = MLPEnergy(2, 16, 2).double()
    x = torch.randn(64, 2, dtype=torch.float64)
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    exact = esm_loss(model, x)
    assert torch.allclose(ssm_loss(model, x, projections=signs), exact, rtol=1e-12, atol=1e-12)
    assert torch.allclose(ssm_loss(model, x, projections=signs, variance_reduced=True), exact, rtol=1e-12, atol=1e-12)


def test_dsm_is_fisher_divergence_of_smoothed_data_in_expectation():
    """E[DSM_sigma] = sigma^4 (2 J(p_sigma) + d / sigma^2), J the exact score-matching objective on the smoothed
    data, whose closed form for the quadratic energy is (d (s^2 + sigma^2) + |m - mu|^2) / (2 tau^4) - d / tau^2."""
    n, sigma = 200000, 0.3
    x = M + S * torch.randn(n, D, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    for mu_shift, tau2 in ((0.0, 0.2), (0.5, 0.4)):
        model = GaussianEnergy(D, var=tau2).double()
        with torch.no_grad():
            model.mean.copy_(M + mu_shift)
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=x.dtype)
        xn = x + sigma * z
        _, g, _ = energy_and_input_grad(model, xn)
        per = (x - xn + sigma ** 2 * g).pow(2).sum(1).detach()
        assert torch.allclose(per.mean(), dsm_loss(model, x, sigma, generator=torch.Generator().manual_seed(8)))
        j = (D * (S ** 2 + sigma ** 2) + D * mu_shift ** 2) / (2 * tau2 ** 2) - D / tau2
        expected = sigma ** 4 * (2 * j + D / sigma ** 2)
        assert abs(float(per.mean()) - expected) < 5 * float(per.std()) / math.sqrt(n)


def test_mdsm_double_backprop_matches_finite_differences():
    torch.manual_seed(0)
    model = MLPEnergy(2, 6, 2).double()
    x = torch.randn(16, 2, dtype=torch.float64)
    sig = NoiseLevels(0.1, 1.0, "linear")(16, x)

    def loss():
        return mdsm_loss(model, x, sig, SIGMA0, generator=torch.Generator().manual_seed(2))

    model.zero_grad()
    loss().backward()
    for p in model.parameters():
        if p.grad is None:  # the additive constant of the energy: no score-matching loss reaches it
            continue
        flat, grad = p.data.view(-1), p.grad.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 5)):
            old = float(flat[i])
            flat[i] = old + 1e-6
            up = float(loss())
            flat[i] = old - 1e-6
            down = float(loss())
            flat[i] = old
            assert abs((up - down) / 2e-6 - float(grad[i])) < 1e-6 * max(1.0, abs(float(grad[i])))


def test_noise_levels_presets_and_errors():
    x = torch.zeros(1)
    lv = NoiseLevels.preset("thesis-mnist")(5, x)
    assert torch.allclose(lv[[0, -1]], torch.tensor([0.1, 3.0]))
    assert torch.allclose(lv[1:] / lv[:-1], (lv[1] / lv[0]).expand(4))  # geometric
    lin = NoiseLevels.preset("thesis-cifar")(4, x)
    assert torch.allclose(lin, torch.linspace(0.05, 1.2, 4))
    r = NoiseLevels(0.1, 3.0, "geometric", "random")(1000, x, torch.Generator().manual_seed(0))
    assert r.min() >= 0.1 and r.max() <= 3.0
    with pytest.raises(ValueError):
        NoiseLevels(0.0, 1.0)
    with pytest.raises(ValueError):
        NoiseLevels(1.0, 0.5)


def test_quadratic_head_is_eq_b3():
    torch.manual_seed(0)
    head = QuadraticHead(5)
    h = torch.randn(3, 5)
    a, b1 = head.first.weight[0], head.first.bias
    c, b2 = head.second.weight[0], head.second.bias
    d, b3 = head.square.weight[0], head.square.bias
    expected = (h @ a + b1) * (h @ c + b2) + (h * h) @ d + b3
    assert torch.allclose(head(h), expected, atol=1e-6)


@pytest.mark.parametrize("preset,shape", [("2d", (2,)), ("digits", (1, 8, 8)), ("mnist", (1, 28, 28))])
def test_presets_map_batches_to_energies(preset, shape):
    model = build_network(network_preset(preset))
    x = torch.rand((3,) + shape)
    e = model(x)
    assert e.shape == (3,) and torch.isfinite(e).all()
    assert tuple(model.event_shape) == shape
    assert build_network(model.config).config == model.config


def test_resnet_doubles_filters_at_each_downsampling():
    model = ResNetEnergy(1, 28, filters=8, stages=3, blocks=2, pad_to=32)
    convs = [m for m in model.body.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert {c.out_channels for c in convs} == {8, 16, 32, 64}
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm))
                   for m in model.modules())
    with pytest.raises(ValueError, match="halved"):
        ResNetEnergy(1, 28, stages=3)


def test_energy_target_freezes_weights_and_keeps_no_graph():
    torch.manual_seed(0)
    model = MLPEnergy(2, 8, 2)
    target = EnergyTarget(model)
    x = torch.randn(5, 2)
    u, g = target.energy_and_grad(x)
    assert u.shape == (5,) and g.shape == (5, 2)
    assert not u.requires_grad and not g.requires_grad and u.grad_fn is None and g.grad_fn is None
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    # gradient against finite differences of the energy
    eps = 1e-3
    fd = (target.energy(x + torch.tensor([eps, 0.0])) - target.energy(x - torch.tensor([eps, 0.0]))) / (2 * eps)
    assert torch.allclose(fd, g[:, 0], atol=1e-3)


def test_energy_target_rejects_bad_models():
    class Bad(torch.nn.Module):
        event_shape = (2,)

        def forward(self, x):
            return x  # [batch, 2], not [batch]

    with pytest.raises(ValueError, match=r"energies \[batch\]"):
        EnergyTarget(Bad()).energy(torch.zeros(3, 2))
    with pytest.raises(TypeError):
        EnergyTarget(lambda x: x)
    with pytest.raises(ValueError, match="event_shape"):
        EnergyTarget(torch.nn.Linear(2, 1))

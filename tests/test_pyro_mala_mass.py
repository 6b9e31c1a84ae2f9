"""MALA in `pyro.infer.MCMC` adapts a diagonal mass matrix from one chain's warmup windows (Stan's windowed scheme):
the variances on a badly scaled Gaussian, and eight schools (non-centred) against its exact posterior means."""
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from entropy_mcmc.diagnostics import ess, mcse
from entropy_mcmc.pyro import PyroKernel, eight_schools_model
from entropy_mcmc.pyro.models import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y

pytestmark = pytest.mark.usefixtures("one_thread", "sequential_chains")

SD = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
Z_MAX = 4.5  # 18 means per comparison; a correct sampler exceeds 4.5 MCSE with probability < 1e-4


def run_one_chain(kernel, num_samples, warmup_steps, *args, seed=0):
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=DeprecationWarning)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=1, disable_progbar=True)
        mcmc.run(*args)
    return mcmc


def scaled_gaussian():
    pyro.sample("x", dist.Normal(torch.zeros(3, dtype=torch.float64), SD).to_event(1))


def test_one_chains_warmup_gives_a_diagonal_inverse_mass_near_the_posterior_variances():
    kernel = PyroKernel(scaled_gaussian, "mala")
    run_one_chain(kernel, 1, 2000)
    inv_mass = kernel.sampler.inv_mass
    assert inv_mass is not None and inv_mass.shape == (3,)
    # the last window (950, 1950] holds 1000 draws; over 40 seeds the ratios stayed within [0.79, 1.15]
    ratio = inv_mass / SD ** 2
    assert ((ratio > 1 / 1.5) & (ratio < 1.5)).all(), ratio


def eight_schools_exact_means():
    """Posterior means of mu, tau, eta, theta by quadrature over (mu, log tau), theta integrated out
    (BDA3 section 5.4): y_j | mu, tau ~ N(mu, sigma_j^2 + tau^2) and
    E[eta_j | mu, tau, y] = tau (y_j - mu) / (sigma_j^2 + tau^2); converged to 4 digits on this grid."""
    y, s2 = np.array(EIGHT_SCHOOLS_Y), np.array(EIGHT_SCHOOLS_SIGMA) ** 2
    mu = np.linspace(-30.0, 40.0, 401)[:, None, None]
    tau = np.exp(np.linspace(-20.0, 9.0, 401))[None, :, None]
    v = s2 + tau ** 2
    log_p = (-0.5 * (mu / 5.0) ** 2 - np.log1p((tau / 5.0) ** 2) + np.log(tau)  # log tau's Jacobian
             - 0.5 * (np.log(v) + (y - mu) ** 2 / v).sum(-1, keepdims=True))
    w = np.exp(log_p - log_p.max())
    w /= w.sum()
    eta = tau * (y - mu) / v
    mean = lambda f: (w * f).sum((0, 1))  # noqa: E731
    return np.concatenate([mean(mu), mean(tau), mean(eta), mean(mu + tau * eta)])


def test_mala_on_eight_schools_mixes_and_matches_the_exact_posterior_means():
    sigma, y = (torch.tensor(v, dtype=torch.float64) for v in (EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y))
    kernel = PyroKernel(eight_schools_model, "mala", jit_compile=True, ignore_jit_warnings=True)
    s = run_one_chain(kernel, 8000, 2000, sigma, y).get_samples(group_by_chain=True)
    theta = s["mu"][..., None] + s["tau"][..., None] * s["eta"]  # the deterministic site
    draws = torch.cat([s["mu"][..., None], s["tau"][..., None], s["eta"], theta], -1)
    bulk = ess(draws)
    assert bulk.min() >= 200, bulk
    z = np.abs(draws.mean((0, 1)).numpy() - eight_schools_exact_means()) / mcse(draws)
    assert z.max() < Z_MAX, z

"""Bayesian logistic regression in Pyro on the shipped datasets: our kernels through pyro.infer.MCMC reproduce the
shipped reference posterior moments within Monte Carlo error, and ArviZ gets the pointwise log-likelihood."""
import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import MCMC

from entropy_mcmc.pyro import PyroKernel, from_pyro, load_blr_data, logistic_regression_model
from entropy_mcmc.targets.logistic_regression import load_reference

from stats_helpers import moment_z_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def run(dataset, kernel, warmup, draws, seed=0):
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=DeprecationWarning)
        mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, num_chains=1, disable_progbar=True)
        mcmc.run(*load_blr_data(dataset))
    return mcmc


@pytest.mark.parametrize("dataset, kernel, options, warmup, draws", [
    ("german", "hmc", dict(num_steps=8, step_size_jitter=0.5), 300, 400),
    ("australian", "hmc", dict(num_steps=8, step_size_jitter=0.5), 300, 400),
    ("heart", "mala", dict(), 500, 2000),
])
def test_posterior_through_pyro_mcmc_matches_the_reference_moments(dataset, kernel, options, warmup, draws):
    ref = load_reference(dataset)
    assert ref is not None, "entropy_mcmc/targets/data/blr_reference.json is missing"
    mcmc = run(dataset, PyroKernel(logistic_regression_model, kernel, jit_compile=True, ignore_jit_warnings=True,
                                   **options), warmup, draws)
    w = mcmc.get_samples(group_by_chain=True)["w"]
    assert w.shape == (1, draws, len(ref["mean"]))
    mean, std = np.asarray(ref["mean"]), np.asarray(ref["std"])
    z_mean, z_var = moment_z_scores(w, mean, std ** 2)
    print(dataset, kernel, "max z mean", z_mean.max().round(2), "max z var", z_var.max().round(2))
    # 2 x d statistics (d = 14 to 25) per run; a correct sampler exceeds 4.5 MCSE with probability < 1e-3
    assert z_mean.max() < 4.5 and z_var.max() < 4.5, (z_mean, z_var)


def test_arviz_gets_the_pointwise_log_likelihood_and_our_sample_stats():
    mcmc = run("heart", PyroKernel(logistic_regression_model, "mala"), 30, 20)
    idata = from_pyro(mcmc)
    loglik = idata.log_likelihood["y"]
    assert loglik.shape == (1, 20, 270)
    w = mcmc.get_samples()["w"][-1]
    x, y = load_blr_data("heart")
    logits = x @ w
    expected = (y * logits - torch.nn.functional.softplus(logits)).numpy()
    np.testing.assert_allclose(loglik.values[0, -1], expected, rtol=1e-10)
    assert {"acceptance_rate", "step_size", "energy", "diverging"} <= set(idata.sample_stats.data_vars)

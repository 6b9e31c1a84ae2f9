"""A hierarchical model with a positive scale: our kernels (through pyro.infer.MCMC and through our runner
on the chain-vectorized target) against Pyro's NUTS on the same model, within Monte Carlo error."""
import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import MCMC, NUTS

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.pyro import PyroKernel, PyroTarget, hierarchical_normal_data, hierarchical_normal_model
from entropy_mcmc.samplers import MALAKernel, HMCKernel, StepSizeAdaptation, sample
from entropy_mcmc.samplers.metropolis import Proposal

pytestmark = pytest.mark.usefixtures("one_thread", "sequential_chains")


DATA = hierarchical_normal_data()
SITES = ("eta", "mu", "tau")
Z_MAX = 4.5  # 12 statistics per comparison; a correct sampler exceeds 4.5 MCSE with probability < 1e-4


def stack_sites(samples):
    """{site: [chains, draws, *shape]} -> [chains, draws, 6] in the flat layout's order, constrained values."""
    parts = [np.asarray(samples[k]).reshape(*np.shape(samples[k])[:2], -1) for k in SITES]
    return np.concatenate(parts, -1).astype(np.float64)


def run_mcmc(kernel, num_samples, warmup_steps, num_chains=2, seed=0):
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="num_chains=")
        warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=DeprecationWarning)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=num_chains,
                    disable_progbar=True)
        mcmc.run(*DATA)
    return mcmc


def z_scores(a, b):
    """|difference| / combined MCSE of the first and second moments, per coordinate (12 values)."""
    za = [np.abs(a.mean((0, 1)) - b.mean((0, 1))) / np.hypot(mcse(a), mcse(b))]
    za.append(np.abs((a ** 2).mean((0, 1)) - (b ** 2).mean((0, 1))) / np.hypot(mcse(a ** 2), mcse(b ** 2)))
    return np.concatenate(za)


@pytest.fixture(scope="module")
def nuts_draws():
    mcmc = run_mcmc(NUTS(hierarchical_normal_model, jit_compile=True, ignore_jit_warnings=True), 600, 300)
    return stack_sites(mcmc.get_samples(group_by_chain=True))


ADAPTER_CASES = {
    "mala": (dict(), 1000, 300),
    "hmc": (dict(num_steps=4), 400, 200),
    "rwm": (dict(), 2000, 300),
}


@pytest.mark.parametrize("name", list(ADAPTER_CASES))
def test_adapter_matches_pyro_nuts(name, nuts_draws):
    options, num_samples, warmup = ADAPTER_CASES[name]
    kernel = PyroKernel(hierarchical_normal_model, name, jit_compile=True, ignore_jit_warnings=True, **options)
    ours = stack_sites(run_mcmc(kernel, num_samples, warmup, seed=1).get_samples(group_by_chain=True))
    z = z_scores(ours, nuts_draws)
    print(name, np.round(z, 2))
    assert z.max() < Z_MAX, z


def test_learned_sampler_trained_during_pyros_warmup_matches_pyro_nuts(nuts_draws):
    kernel = PyroKernel(hierarchical_normal_model, "learned", train=dict(steps=150, batch_size=32),
                        jit_compile=True, ignore_jit_warnings=True)
    mcmc = run_mcmc(kernel, 500, 100, seed=2)
    assert kernel.train_result is not None and len(kernel.train_result.history["accept"]) == 150
    ours = stack_sites(mcmc.get_samples(group_by_chain=True))
    z = z_scores(ours, nuts_draws)
    print("learned", np.round(z, 2))
    assert z.max() < Z_MAX, z
    rates = mcmc.diagnostics()["acceptance rate"]
    assert all(0.3 < r < 1.0 for r in rates.values()), rates


class MALADroppedReverse(MALAKernel):
    """Deliberately broken: treats the Langevin proposal as symmetric."""

    def propose(self, state):
        prop = super().propose(state)
        return Proposal(prop.state, torch.zeros_like(prop.log_correction), prop.num_grad_evals)


def test_a_broken_kernel_through_the_adapter_fails_the_same_comparison(nuts_draws):
    kernel = PyroKernel(hierarchical_normal_model, lambda t: MALADroppedReverse(t, 1.5), adapt_step_size=False,
                        jit_compile=True, ignore_jit_warnings=True)
    ours = stack_sites(run_mcmc(kernel, 1000, 300, seed=1).get_samples(group_by_chain=True))
    z = z_scores(ours, nuts_draws)
    print("broken", np.round(z, 2))
    assert z.max() > Z_MAX, z  # about 2 Z_MAX here: the dropped correction biases the eta second moments


@pytest.mark.parametrize("name", ["hmc", "mala"])
def test_runner_on_the_vectorized_pyro_target_matches_pyro_nuts(name, nuts_draws):
    target = PyroTarget(hierarchical_normal_model, DATA)
    # Pyro's init_to_uniform: log tau up to 2; per-chain step sizes, as each Pyro chain adapts its own,
    # let chains started at a large tau (a stiff eta) shrink their step and leave
    init = target.initial_position(64, generator=torch.Generator().manual_seed(7))
    if name == "hmc":
        kernel = StepSizeAdaptation(HMCKernel(target, 0.3, num_steps=4), 0.8, per_chain=True, adapt_mass_matrix=True)
        draws = 250
    else:
        kernel, draws = StepSizeAdaptation(MALAKernel(target, 0.5), 0.574, per_chain=True), 600
    res = sample(kernel, init, draws, num_warmup=300, progress=False, seed=8)
    ours = stack_sites({k: v.numpy() for k, v in target.constrain(res.draws).items()})
    z = z_scores(ours, nuts_draws)
    print(name, np.round(z, 2))
    assert z.max() < Z_MAX, z

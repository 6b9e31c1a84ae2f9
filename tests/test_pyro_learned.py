"""kernel="learned" in PyroKernel: training on the chain-vectorized Pyro target, saving and loading (`sampler=path`)."""
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from entropy_mcmc.pyro import PyroKernel, PyroTarget, hierarchical_normal_data, hierarchical_normal_model
from entropy_mcmc.learning import train_on_target
from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.samplers import MixtureKernel, WarmupHandoff, find_kernel, run_chains, sample
from entropy_mcmc.samplers.learned import LearnedSampler

pytestmark = pytest.mark.usefixtures("one_thread", "sequential_chains")


DATA = hierarchical_normal_data()
TINY = dict(train=dict(steps=30, batch_size=16), model_config=dict(width=8), warmup_steps=50)


def run(kernel, num_samples, warmup_steps, num_chains=1, seed=0, args=DATA):
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="num_chains=")
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=num_chains,
                    disable_progbar=True)
        mcmc.run(*args)
    return mcmc


def test_trained_sampler_is_saved_loaded_and_reused_across_chains(tmp_path):
    path = tmp_path / "hier.pt"
    trained = PyroKernel(hierarchical_normal_model, "learned", save_to=path, mixture_share=0, **TINY)
    mcmc = run(trained, 20, 10, num_chains=2)
    assert path.exists() and mcmc.get_samples()["eta"].shape == (40, 4)
    result = trained.train_result
    assert len(result.history["accept"]) == 30
    # the second chain reused the first chain's training (and the mixture share): the last chain's proposal is
    # the trained one, alone after the MALA warmup
    assert isinstance(trained.sampler, WarmupHandoff) and trained.sampler.kernel.model is result.model

    loaded = PyroKernel(hierarchical_normal_model, "learned", sampler=path)
    run(loaded, 20, 10)
    learned = find_kernel(loaded.sampler, LearnedSampler)
    assert isinstance(loaded.sampler.kernel, MixtureKernel) and loaded.train_result is None
    for (name, a), (_, b) in zip(result.model.state_dict().items(), learned.model.state_dict().items()):
        torch.testing.assert_close(a.to(b.dtype), b, msg=name)
    # the trained eps is the step size; it is not adapted (the warmup adapts MALA's)
    assert learned.step_size == pytest.approx(result.model.eps)
    assert mcmc.diagnostics()["step size"]["chain 1"] == pytest.approx(result.model.eps)


def test_learned_sampler_trains_on_the_vectorized_pyro_target_and_runs_many_chains_in_our_runner():
    target = PyroTarget(hierarchical_normal_model, DATA)
    result = train_on_target(target, dict(steps=40, batch_size=32), dict(width=8), warmup_steps=100, seed=1)
    assert result.sample_source == "bootstrap"
    assert len(result.history["accept"]) == 40
    kernel = LearnedSampler(target, result.model, seed=2)
    init = result.extra["buffer"].to(torch.float64)
    res = sample(kernel, init, 50, progress=False)
    assert res.draws.shape == (32, 50, 6) and torch.isfinite(res.draws).all()
    # moves are accepted with the recorded probability: the accepted indicator's mean matches the mean
    # acceptance probability within 4 Monte Carlo standard errors of their difference
    prob = res.stats["acceptance_prob"].double().numpy()
    accepted = res.stats["accepted"].double().numpy()
    assert abs(accepted.mean() - prob.mean()) < 4 * float(mcse(accepted - prob)[0]), (accepted.mean(), prob.mean())
    # the trained proposal samples the same posterior as HMC: means within 4 combined MCSEs
    ref = run_chains(target, "hmc", chains=32, num_warmup=200, num_draws=200, seed=0, dtype="float64", warn=False)
    a, b = res.draws.double().numpy(), ref.draws.double().numpy()
    z = np.abs(a.mean((0, 1)) - b.mean((0, 1))) / np.sqrt(mcse(a) ** 2 + mcse(b) ** 2)
    assert np.all(z < 4), z


def _not_vectorizable(y):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = 1.0 if float(loc.detach()) > 0 else 2.0
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(loc, scale), obs=y)


def test_learned_on_a_model_that_does_not_vectorize_names_the_cause():
    kernel = PyroKernel(_not_vectorizable, "learned", **TINY)
    cause = r"(?s)kernel='learned' trains on the chain-vectorized target.*only one element.*sampler=path"
    with pytest.raises(ValueError, match=cause):
        run(kernel, 5, 5, args=(torch.tensor([0.1, 0.4]),))

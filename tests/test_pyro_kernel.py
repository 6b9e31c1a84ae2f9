"""PyroKernel inside pyro.infer.MCMC: Pyro's API (get_samples, summary, diagnostics, ArviZ), warmup, seeding."""
import warnings

import arviz as az
import numpy as np
import pyro
import pytest
import torch
from pyro.infer import MCMC

from entropy_mcmc.pyro import PyroKernel, from_pyro, hierarchical_normal_data, hierarchical_normal_model
from entropy_mcmc.pyro.inference_data import SAMPLE_STAT_NAMES
from entropy_mcmc.samplers import HMCKernel, RandomWalkMetropolis, sample
from entropy_mcmc.targets import Gaussian

pytestmark = pytest.mark.usefixtures("one_thread", "sequential_chains")


DATA = hierarchical_normal_data()


def run(kernel, num_samples=150, warmup_steps=150, num_chains=2, seed=0, hook_fn=None):
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="num_chains=")  # chains run sequentially on small machines
        warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=DeprecationWarning)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=num_chains,
                    disable_progbar=True, hook_fn=hook_fn)
        mcmc.run(*DATA)
    return mcmc


@pytest.fixture(scope="module")
def mala_run():
    steps = []
    hook = lambda kernel, params, stage, i: steps.append((stage, kernel.step_size))  # noqa: E731
    return run(PyroKernel(hierarchical_normal_model, "mala", jit_compile=True, ignore_jit_warnings=True),
               hook_fn=hook), steps


def test_get_samples_are_constrained_and_shaped_like_pyros(mala_run):
    mcmc, _ = mala_run
    samples = mcmc.get_samples()
    assert samples["eta"].shape == (300, 4) and samples["mu"].shape == (300,) and samples["tau"].shape == (300,)
    assert (samples["tau"] > 0).all()
    by_chain = mcmc.get_samples(group_by_chain=True)
    assert by_chain["eta"].shape == (2, 150, 4)
    assert not torch.equal(by_chain["mu"][0], by_chain["mu"][1])


def test_summary_and_diagnostics_report_acceptance_step_size_and_divergences(mala_run, capsys):
    mcmc, _ = mala_run
    mcmc.summary()
    out = capsys.readouterr().out
    assert "tau" in out and "Number of divergences" in out
    diag = mcmc.diagnostics()
    for chain in ("chain 0", "chain 1"):
        # MALA adapted toward 0.574; 150 warmup steps leave 50 after the mass matrix's window to re-adapt the step
        # size, so one chain's acceptance over 150 draws spreads (0.46 to 0.89 over 12 seeds)
        assert 0.3 < diag["acceptance rate"][chain] < 0.95
        assert diag["step size"][chain] > 0
        assert isinstance(diag["divergences"][chain], list)
        stats = diag["sample_stats"][chain]
        assert set(stats) == set(SAMPLE_STAT_NAMES) and stats["acceptance_rate"].shape == (150,)
        assert stats["is_accepted"].float().mean() == pytest.approx(diag["acceptance rate"][chain])
    kernel = mcmc.kernel
    assert set(kernel.logging()) == {"step size", "acc. prob", "div"}


def test_warmup_ends_at_pyros_warmup_steps_and_the_step_size_is_frozen(mala_run):
    _, steps = mala_run
    chain0 = steps[:300]
    warm = [s for stage, s in chain0 if stage.startswith("Warmup")]
    draw = [s for stage, s in chain0 if stage.startswith("Sample")]
    assert len(warm) == 150 and len(draw) == 150
    assert len(set(warm[:-1])) > 50  # dual averaging moves it every warmup step
    assert len(set(draw)) == 1 and warm[-1] == draw[0]  # frozen at the last warmup step


def test_arviz_from_pyro_and_our_from_pyro_carry_the_runners_stat_names(mala_run):
    mcmc, _ = mala_run
    plain = az.from_pyro(mcmc)
    assert set(plain.posterior.data_vars) == {"eta", "mu", "tau"}
    assert plain.posterior["eta"].shape == (2, 150, 4)
    idata = from_pyro(mcmc)
    ours = set(idata.sample_stats.data_vars)
    assert ours == set(SAMPLE_STAT_NAMES)
    np.testing.assert_array_equal(idata.sample_stats["diverging"].values, plain.sample_stats["diverging"].values)
    assert idata.sample_stats["acceptance_rate"].shape == (2, 150)
    # the runner's own ArviZ output uses the same names
    g = Gaussian(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    res = sample(HMCKernel(g, 0.5, num_steps=3), torch.zeros(4, 2, dtype=torch.float64), 20, progress=False, seed=1)
    assert set(res.to_arviz().sample_stats.data_vars) == ours
    assert az.summary(idata, var_names=["mu", "tau"]).shape[0] == 2


def test_pyro_set_rng_seed_makes_runs_reproducible():
    def once(seed):
        return run(PyroKernel(hierarchical_normal_model, "rwm"), num_samples=30, warmup_steps=20, num_chains=1,
                   seed=seed).get_samples()["mu"]

    a, b, c = once(3), once(3), once(4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_callable_kernel_with_options_and_fixed_step_size_without_adaptation():
    made = []

    def factory(target, step_size):
        made.append(target)
        return RandomWalkMetropolis(target, step_size)

    mcmc = run(PyroKernel(hierarchical_normal_model, factory, adapt_step_size=False, step_size=0.4),
               num_samples=40, warmup_steps=10, num_chains=1)
    assert made and made[0].dim == 6
    assert mcmc.diagnostics()["step size"]["chain 0"] == pytest.approx(0.4)
    assert mcmc.get_samples()["eta"].shape == (40, 4)


def test_hmc_adapts_a_diagonal_mass_matrix_during_warmup():
    kernel = PyroKernel(hierarchical_normal_model, "hmc", num_steps=3)
    run(kernel, num_samples=5, warmup_steps=120, num_chains=1)
    inv_mass = kernel.sampler.inv_mass  # the last chain's kernel stays for inspection
    assert inv_mass is not None and inv_mass.shape == (6,)
    assert not torch.allclose(inv_mass, torch.ones_like(inv_mass))
    assert not kernel.sampler.adapting


def test_mala_adapts_a_diagonal_mass_matrix_unless_asked_for_a_dense_one_or_none():
    # MALA defaults to a dense mass in the registry; one Pyro chain's windows are too short for it
    default = PyroKernel(hierarchical_normal_model, "mala")
    run(default, num_samples=5, warmup_steps=120, num_chains=1)
    asked = PyroKernel(hierarchical_normal_model, "mala", adapt_mass_matrix="dense")
    run(asked, num_samples=5, warmup_steps=120, num_chains=1)
    off = PyroKernel(hierarchical_normal_model, "mala", adapt_mass_matrix=False)
    run(off, num_samples=5, warmup_steps=120, num_chains=1)
    assert default.sampler.inv_mass is not None and default.sampler.inv_mass.shape == (6,)
    assert asked.sampler.inv_mass is not None and asked.sampler.inv_mass.shape == (6, 6)
    assert off.sampler.inv_mass is None


def test_step_size_jitter_redraws_the_step_size_around_the_adapted_one_after_warmup():
    kernel = PyroKernel(hierarchical_normal_model, "hmc", num_steps=2, step_size_jitter=0.5)
    mcmc = run(kernel, num_samples=40, warmup_steps=30, num_chains=1)
    used = mcmc.diagnostics()["sample_stats"]["chain 0"]["step_size"]
    nominal = float(kernel.sampler.step_size_value)
    assert len(set(used.tolist())) == 40
    assert float(used.min()) >= 0.5 * nominal and float(used.max()) <= 1.5 * nominal


def test_chains_in_worker_processes(monkeypatch):
    """With free cores Pyro runs chains in worker processes: the kernel travels there and back."""
    import pyro.infer.mcmc.api as api

    monkeypatch.setattr(api.mp, "cpu_count", lambda: 4)
    pyro.set_rng_seed(5)
    mcmc = MCMC(PyroKernel(hierarchical_normal_model, "mala"), num_samples=30, warmup_steps=20, num_chains=2,
                disable_progbar=True)
    assert type(mcmc.sampler).__name__ == "_MultiSampler"
    mcmc.run(*DATA)
    mu = mcmc.get_samples(group_by_chain=True)["mu"]
    assert mu.shape == (2, 30) and not torch.equal(mu[0], mu[1])
    stats = from_pyro(mcmc).sample_stats
    assert stats["acceptance_rate"].shape == (2, 30) and float(stats["step_size"].min()) > 0


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown kernel 'nutz'"):
        PyroKernel(hierarchical_normal_model, "nutz")
    with pytest.raises(ValueError, match="target_accept"):
        PyroKernel(hierarchical_normal_model, "mala", target_accept=1.5)
    with pytest.raises(ValueError, match="step_size_jitter"):
        PyroKernel(hierarchical_normal_model, "hmc", step_size_jitter=1.0)
    bad = PyroKernel(hierarchical_normal_model, lambda target: "not a kernel")
    with pytest.raises(TypeError, match="must return an entropy_mcmc TransitionKernel"):
        run(bad, num_samples=2, warmup_steps=0, num_chains=1)


def _subsampled(y):
    loc = pyro.sample("loc", pyro.distributions.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0], subsample_size=5) as idx:
        pyro.sample("y", pyro.distributions.Normal(loc, 1.0), obs=y[idx])


def test_a_subsampled_plate_is_refused_with_the_reason():
    kernel = PyroKernel(_subsampled, "mala")
    with pytest.raises(ValueError, match=r"plate 'data' subsamples 5 of 20 items.*noisy"):
        kernel.setup(0, torch.zeros(20))


def test_learned_starts_where_the_user_put_the_chain():
    """With `initial_params` the learned kernel starts there; without, at one of the training's chains."""
    start = {"mu": torch.tensor(3.0, dtype=torch.float64), "tau": torch.tensor(-1.0, dtype=torch.float64),
             "eta": torch.full((4,), 2.0, dtype=torch.float64)}   # unconstrained values (log tau = -1)
    positions = {}
    for given in (True, False):
        kernel = PyroKernel(hierarchical_normal_model, "learned", train=dict(steps=5, batch_size=8),
                            model_config=dict(width=4), warmup_steps=5)
        if given:
            kernel.initial_params = start
        pyro.set_rng_seed(0)
        kernel.setup(0, *DATA)
        kernel._build(kernel.initial_params)   # trains, then makes the chain's kernel and first state
        positions[given] = kernel._state.position[0]
        buffer = kernel.train_result.extra["buffer"].reshape(8, -1).to(positions[given])
    assert torch.equal(positions[True], kernel.layout.flatten(start))
    assert any(torch.equal(positions[False], row) for row in buffer)

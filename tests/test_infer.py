"""The NumPyro-style front door (`entropy_mcmc.infer`) and targets from plain functions (`Target.from_log_prob`)."""
import subprocess
import sys

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from entropy_mcmc import HMC, MALA, MCMC, RWM
from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.infer import Kernel
from entropy_mcmc.samplers import StepSizeAdaptation, StepSizeJitter, build_kernel, get_kernel_spec, sample, unwrap
from entropy_mcmc.targets.base import LogDensity, Target
from stats_helpers import moment_z_scores

pytestmark = pytest.mark.usefixtures("one_thread")

COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
PREC = torch.linalg.inv(COV)


def potential(x):
    """U(x) = x' Sigma^-1 x / 2 for x [chains, 2]: a correlated 2-d Gaussian, vectorized over chains."""
    return 0.5 * ((x @ PREC.to(x.dtype)) * x).sum(-1)


def log_prob(x):
    return -potential(x)


def assert_gaussian_moments(draws):
    """Means, variances and the covariance of `draws` [chains, draws, 2] match COV within 4 MCSE."""
    z_mean, z_var = moment_z_scores(draws, torch.zeros(2), COV.diagonal())
    cross = (draws[..., 0] * draws[..., 1]).double().numpy()[..., None]
    z_cov = np.abs(cross.mean() - 0.8) / mcse(cross)
    assert (z_mean < 4).all() and (z_var < 4).all() and (z_cov < 4).all(), (z_mean, z_var, z_cov)


def test_hmc_on_a_plain_potential_recovers_the_gaussian_moments():
    mcmc = MCMC(HMC(potential_fn=potential, event_shape=2), num_warmup=200, num_samples=600, num_chains=8,
                progress_bar=False)
    mcmc.run(0)
    draws = mcmc.get_samples(group_by_chain=True)
    assert draws.shape == (8, 600, 2) and draws.dtype == torch.get_default_dtype()
    assert_gaussian_moments(draws)
    # a potential that is off by a factor (the wrong target) fails the same check
    with pytest.raises(AssertionError):
        assert_gaussian_moments(draws * 1.2)


def test_kernels_go_through_build_kernel_with_numpyro_keywords():
    target = Target.from_log_prob(log_prob, (2,))
    stack = [type(k) for k in unwrap(HMC(potential_fn=potential).build(target, 10))]
    assert stack[:2] == [StepSizeJitter, StepSizeAdaptation]  # the registry's HMC defaults
    adapt = HMC(potential_fn=potential, dense_mass=True, target_accept_prob=0.65).build(target, 10).kernel
    assert adapt.adapt_mass_matrix == "dense" and adapt.target_accept == 0.65
    assert MALA(potential_fn=potential, adapt_mass_matrix=False).build(target, 10).adapt_mass_matrix is None
    fixed = RWM(potential_fn=potential, adapt_step_size=False, step_size=0.3).build(target, 10)
    assert len(unwrap(fixed)) == 1 and fixed.step_size == 0.3  # no adaptation wrapper
    mala = MALA(potential_fn=potential).build(target, 10)  # the registry's defaults
    assert mala.target_accept == get_kernel_spec("mala").target_accept
    assert mala.adapt_mass_matrix == get_kernel_spec("mala").adapts_mass
    assert MALA(potential_fn=potential, dense_mass=False).build(target, 10).adapt_mass_matrix == "diag"
    with pytest.raises(ValueError, match="adapt_mass_matrix=False"):
        HMC(potential_fn=potential, adapt_step_size=False)
    with pytest.raises(ValueError, match="unknown kernel 'nutz'"):
        Kernel("nutz", potential_fn=potential)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # R-hat of 10 draws per chain
def test_sample_and_extra_field_shapes_with_and_without_group_by_chain():
    def potential_23(x):  # independent standard normals on a [2, 3] event
        return 0.5 * (x ** 2).sum((1, 2))

    mcmc = MCMC(Kernel("mala", potential_fn=potential_23, event_shape=(2, 3)), num_warmup=20, num_samples=30,
                num_chains=4, thinning=3, progress_bar=False)
    mcmc.run(1, extra_fields=("accept_prob", "diverging", "step_size"))
    assert mcmc.get_samples().shape == (40, 2, 3)  # 30 // 3 = 10 draws per chain
    grouped = mcmc.get_samples(group_by_chain=True)
    assert grouped.shape == (4, 10, 2, 3)
    torch.testing.assert_close(mcmc.get_samples(), grouped.reshape(40, 2, 3))
    extra = mcmc.get_extra_fields()
    assert sorted(extra) == ["accept_prob", "diverging", "step_size"]
    assert all(v.shape == (40,) for v in extra.values())
    assert all(v.shape == (4, 10) for v in mcmc.get_extra_fields(group_by_chain=True).values())
    assert ((extra["accept_prob"] >= 0) & (extra["accept_prob"] <= 1)).all()
    assert extra["diverging"].dtype == torch.bool
    # the same seed gives the same draws bitwise
    again = MCMC(Kernel("mala", potential_fn=potential_23, event_shape=(2, 3)), num_warmup=20, num_samples=30,
                 num_chains=4, thinning=3, progress_bar=False)
    again.run(1)
    assert torch.equal(again.get_samples(), mcmc.get_samples())
    assert "acceptance_prob" in again.get_extra_fields()  # no extra_fields: every recorded statistic
    with pytest.raises(ValueError, match="not recorded"):
        again.run(1, extra_fields=("tree_depth",))


def test_init_params_are_where_the_chains_start():
    init = torch.tensor([[5.0, 5.0], [-3.0, 2.0], [0.5, -4.0]])
    mcmc = MCMC(RWM(potential_fn=potential, step_size=1e-6, adapt_step_size=False), num_warmup=0, num_samples=2,
                num_chains=3, progress_bar=False)
    mcmc.run(0, init_params=init)
    first = mcmc.get_samples(group_by_chain=True)[:, 0]
    torch.testing.assert_close(first, init, atol=1e-4, rtol=0)
    # the event shape comes from init_params; one [*event] start is shared by every chain when it is known
    mcmc = MCMC(RWM(potential_fn=potential, event_shape=2, step_size=1e-6, adapt_step_size=False), num_warmup=0,
                num_samples=2, num_chains=3, progress_bar=False)
    mcmc.run(0, init_params=torch.tensor([5.0, -5.0]))
    torch.testing.assert_close(mcmc.get_samples(group_by_chain=True)[:, 0], torch.tensor([[5.0, -5.0]] * 3),
                               atol=1e-4, rtol=0)
    # without init_params the chains start near 0 (Target.initial_positions)
    mcmc.run(0)
    assert mcmc.get_samples(group_by_chain=True)[:, 0].abs().max() < 1.0
    with pytest.raises(ValueError, match=r"\[num_chains, \*event\] = \[3"):
        mcmc.run(0, init_params=torch.zeros(2, 2))


def normal_model(y):
    """mu ~ N(0, 1), y_i ~ N(mu, 1): mu | y ~ N(sum y / (n + 1), 1 / (n + 1)); sigma ~ LogNormal(0, 0.5), no data."""
    mu = pyro.sample("mu", dist.Normal(torch.zeros((), dtype=y.dtype), 1.0))
    pyro.sample("sigma", dist.LogNormal(torch.zeros((), dtype=y.dtype), 0.5))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


Y = torch.tensor([0.3, 1.1, 2.0, 0.9], dtype=torch.float64)


def test_a_pyro_model_gives_constrained_site_samples_with_the_known_posterior():
    mcmc = MCMC(HMC(normal_model, num_steps=3), num_warmup=150, num_samples=300, num_chains=8, progress_bar=False)
    mcmc.run(0, Y)
    samples = mcmc.get_samples()
    assert sorted(samples) == ["mu", "sigma"]
    assert samples["mu"].shape == (2400,) and samples["mu"].dtype == torch.float64
    assert (samples["sigma"] > 0).all()  # the constrained space, not log sigma
    grouped = mcmc.get_samples(group_by_chain=True)
    assert grouped["sigma"].shape == (8, 300)
    # mu and log sigma are Gaussian: N(0.86, 1/5) and N(0, 0.25)
    draws = torch.stack([grouped["mu"], grouped["sigma"].log()], -1)
    z_mean, z_var = moment_z_scores(draws, [Y.sum() / 5, 0.0], [0.2, 0.25])
    assert (z_mean < 4).all() and (z_var < 4).all(), (z_mean, z_var)
    idata = mcmc.to_arviz()
    assert idata.posterior["sigma"].shape == (8, 300) and float(idata.posterior["sigma"].min()) > 0
    assert {"acceptance_rate", "diverging", "step_size"} <= set(idata.sample_stats.data_vars)

    # init_params for a model: unconstrained site values (log sigma), as NumPyro and Pyro take them
    start = MCMC(RWM(normal_model, step_size=1e-6, adapt_step_size=False), num_warmup=0, num_samples=1,
                 num_chains=2, progress_bar=False)
    start.run(0, Y, init_params={"mu": torch.tensor([-1.0, 2.0]), "sigma": torch.tensor(1.5)})
    first = start.get_samples(group_by_chain=True)
    torch.testing.assert_close(first["mu"][:, 0], torch.tensor([-1.0, 2.0], dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(first["sigma"][:, 0], torch.full((2,), 1.5, dtype=torch.float64).exp(), atol=1e-3,
                               rtol=0)
    with pytest.raises(ValueError, match="not latent sites"):
        start.run(0, Y, init_params={"mu": torch.tensor(0.0), "sigma": torch.tensor(0.0), "tau": torch.tensor(0.0)})


def test_print_summary_uses_prob_and_counts_divergences(capsys):
    mcmc = MCMC(MALA(potential_fn=potential, event_shape=2), num_warmup=50, num_samples=100, num_chains=4,
                progress_bar=False)
    mcmc.run(3)
    mcmc.print_summary(prob=0.8)
    out = capsys.readouterr().out
    assert "hdi_10%" in out and "hdi_90%" in out and "x[1]" in out
    assert f"Number of divergences: {mcmc.num_divergences}" in out
    assert mcmc.to_arviz().posterior["x"].shape == (4, 100, 2)


@pytest.mark.parametrize("bad, got", [
    (lambda x: x * 2.0, r"returned \[3, 2\], on one point ValueError: it returned \[2\]"),
    (lambda x: None, r"returned NoneType")])
def test_a_potential_of_the_wrong_shape_is_one_clear_line(bad, got):
    mcmc = MCMC(HMC(potential_fn=bad, event_shape=2), num_warmup=5, num_samples=5, num_chains=3, progress_bar=False)
    with pytest.raises(ValueError, match=r"must map one point \(shape \[2\]\) to a scalar, or a batch "
                                         rf"\[chains, \.\.\.\] to \[chains\]; on a batch of 3 points it {got}") as err:
        mcmc.run(0)
    assert "\n" not in str(err.value)


def test_misuse_is_reported():
    with pytest.raises(ValueError, match="exactly one"):
        HMC()
    with pytest.raises(ValueError, match="exactly one"):
        HMC(normal_model, potential_fn=potential)
    mcmc = MCMC(HMC(potential_fn=potential, event_shape=2), num_warmup=1, num_samples=1, progress_bar=False)
    with pytest.raises(RuntimeError, match="run"):
        mcmc.get_samples()
    with pytest.raises(TypeError, match="rng_key"):
        mcmc.run(torch.Generator())
    with pytest.raises(ValueError, match="model arguments"):
        mcmc.run(0, Y)
    with pytest.raises(ValueError, match="event_shape"):
        MCMC(HMC(potential_fn=potential), num_warmup=1, num_samples=1, progress_bar=False).run(0)
    with pytest.raises(ValueError, match="num_samples"):
        MCMC(HMC(potential_fn=potential), num_warmup=1, num_samples=0)


def test_from_log_prob_is_a_target_for_sample():
    target = Target.from_log_prob(log_prob, (2,))
    assert isinstance(target, LogDensity) and target.event_shape == (2,)
    kernel = build_kernel("mala", target, num_warmup=200)
    init = target.initial_positions(8, seed=1, dtype=torch.float64)
    result = sample(kernel, init, num_draws=1500, num_warmup=200, seed=2, progress=False)
    assert result.draws.shape == (8, 1500, 2)
    assert_gaussian_moments(result.draws)
    wrong = Target.from_log_prob(lambda x: log_prob(x)[:, None], 2)
    with pytest.raises(ValueError, match=r"tensor \[chains\] = \[8\], got \[8, 1\]"):
        sample(build_kernel("mala", wrong, num_warmup=0), init, num_draws=2, progress=False)


def test_import_entropy_mcmc_stays_light():
    code = ("import sys, entropy_mcmc; assert 'torch' not in sys.modules and 'entropy_mcmc.infer' not in sys.modules; "
            "assert {'MCMC', 'HMC', 'MALA', 'RWM'} <= set(dir(entropy_mcmc))")
    subprocess.run([sys.executable, "-c", code], check=True)

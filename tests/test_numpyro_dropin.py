"""Drop-in for NumPyro and Pyro users: models and potentials written as NumPyro's docs write them, NumPyro's
`MCMC` idioms, chain methods, the ArviZ export, and one-line errors on bad input."""
import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Predictive

from entropy_mcmc import HMC, MCMC, NUTS
from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.samplers import run_chains
from entropy_mcmc.targets import LogisticRegression
from entropy_mcmc.targets.potential import SequentialFallbackWarning
from stats_helpers import moment_z_scores

pytestmark = pytest.mark.usefixtures("one_thread")

GEN = torch.Generator().manual_seed(0)
N, D, NOISE = 40, 3, 0.5
X = torch.randn(N, D, generator=GEN, dtype=torch.float64)
Y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + NOISE * torch.randn(N, generator=GEN,
                                                                                    dtype=torch.float64)
# w ~ N(0, I), y ~ N(X w, NOISE^2 I): w | y ~ N(A^-1 X'y / NOISE^2, A^-1) with A = I + X'X / NOISE^2
PREC = torch.eye(D, dtype=torch.float64) + X.T @ X / NOISE ** 2
POST_COV = torch.linalg.inv(PREC)
POST_MEAN = POST_COV @ X.T @ Y / NOISE ** 2


def linear_regression(X, y=None):
    """NumPyro's linear regression as its docs write it: an event-shaped `w` and `X @ w`."""
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1], dtype=X.dtype), 1.0).to_event(1))
    pyro.deterministic("w_norm2", (w ** 2).sum(-1))
    pyro.sample("y", dist.Normal(X @ w, NOISE).to_event(1), obs=y)


def logistic_regression(X, y=None):
    """A logistic regression with a data plate and `X @ w + b` inside it."""
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1], dtype=X.dtype), 1.0).to_event(1))
    b = pyro.sample("b", dist.Normal(torch.zeros((), dtype=X.dtype), 1.0))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=X @ w + b), obs=y)


def run(kernel, *args, num_warmup=200, num_samples=400, num_chains=4, seed=0, **kwargs):
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains, progress_bar=False,
                **{k: kwargs.pop(k) for k in ("thinning", "chain_method") if k in kwargs})
    mcmc.run(seed, *args, **kwargs)
    return mcmc


def assert_linear_posterior(w):
    """Draws `[chains, draws, D]` have the closed-form posterior's means and variances within 4 MCSE."""
    z_mean, z_var = moment_z_scores(w, POST_MEAN, POST_COV.diagonal())
    assert (z_mean < 4).all() and (z_var < 4).all(), (z_mean, z_var)


@pytest.fixture(scope="module")
def linear():
    return run(NUTS(linear_regression), X, y=Y)


def test_numpyros_linear_regression_samples_the_closed_form_posterior(linear):
    assert linear.target.method == "vmap"  # the chain plate breaks `X @ w`; vmap, verified at setup, does not
    w = linear.get_samples(group_by_chain=True)["w"]
    assert w.shape == (4, 400, D)
    assert_linear_posterior(w)
    with pytest.raises(AssertionError):  # the same check catches a posterior off by a tenth of an sd
        assert_linear_posterior(w + 0.1 * POST_COV.diagonal().sqrt())


def test_deterministic_sites_are_in_the_samples_and_predictive_runs_on_them(linear):
    samples = linear.get_samples()
    assert samples["w_norm2"].shape == (1600,)
    torch.testing.assert_close(samples["w_norm2"], (samples["w"] ** 2).sum(-1))
    pred = Predictive(linear_regression, posterior_samples=samples)(X)
    assert pred["y"].shape == (1600, N)
    # the predictive mean of y is X E[w]: within 4 standard errors of the predictive draws' mean
    err = (pred["y"].mean(0) - X @ samples["w"].mean(0)).abs() / (pred["y"].std(0) / 1600 ** 0.5)
    assert (err < 4 * 1.5).all(), err.max()  # 1.5: the draws are autocorrelated, ESS < 1600


def test_the_chain_methods_give_the_same_draws():
    # a fixed step size: adaptation would amplify the energies' last-bit differences (summation order)
    fixed = dict(num_steps=5, step_size=0.05, adapt_step_size=False, adapt_mass_matrix=False)
    vec = run(HMC(linear_regression, **fixed), X, y=Y, num_warmup=0, num_samples=50, num_chains=3)
    seq = run(HMC(linear_regression, **fixed), X, y=Y, num_warmup=0, num_samples=50, num_chains=3,
              chain_method="sequential")
    assert seq.target.method == "sequential" and vec.target.method == "vmap"
    torch.testing.assert_close(seq.get_samples()["w"], vec.get_samples()["w"], rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="chain_method must be one of 'auto', 'vectorized', 'sequential', "
                                         "'parallel', got 'pmap'"):
        MCMC(NUTS(linear_regression), num_warmup=1, num_samples=1, chain_method="pmap")


def test_parallel_runs_the_chains_in_processes():
    mcmc = run(NUTS(linear_regression), X, y=Y, num_warmup=150, num_samples=300, chain_method="parallel")
    assert mcmc.result.attrs["world_size"] == 2 or torch.multiprocessing.cpu_count() == 1
    assert_linear_posterior(mcmc.get_samples(group_by_chain=True)["w"])


def test_logistic_regression_with_a_data_plate_matches_the_native_target():
    mcmc = run(NUTS(logistic_regression), X, y=(Y > 0).double(), num_samples=300)
    assert mcmc.target.method in ("plate", "vmap")
    s = mcmc.get_samples(group_by_chain=True)
    ours = torch.cat([s["b"][..., None], s["w"]], -1).numpy()
    native = LogisticRegression(torch.cat([torch.ones(N, 1, dtype=torch.float64), X], 1), (Y > 0).double())
    ref = run_chains(native, "hmc", chains=8, num_warmup=200, num_draws=400, seed=1, dtype="float64",
                     warn=False).draws.numpy()
    z = np.abs(ours.mean((0, 1)) - ref.mean((0, 1))) / np.hypot(mcse(ours), mcse(ref))
    assert (z < 4).all(), z


def mixture(y):
    """A discrete latent Pyro enumerates: neither a chain plate nor vmap can evaluate it."""
    z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.3, dtype=torch.float64)))
    loc = pyro.sample("loc", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(loc + 2.0 * z, 1.0), obs=y)


def test_a_model_that_does_not_vectorize_falls_back_with_one_warning_and_the_right_posterior():
    y = torch.tensor([0.3, 2.5, 1.2], dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mcmc = run(NUTS(mixture), y, num_warmup=150, num_samples=300)
    fallbacks = [w for w in caught if issubclass(w.category, SequentialFallbackWarning)]
    assert len(fallbacks) == 1 and "['z'] are discrete" in str(fallbacks[0].message)
    # p(loc | y) on a grid: N(loc; 0, 1) * sum_z p(z) prod_i N(y_i; loc + 2z, 1)
    grid = torch.linspace(-6, 8, 20001, dtype=torch.float64)
    lik = [p * torch.distributions.Normal(grid[:, None] + 2.0 * z, 1.0).log_prob(y).sum(1).exp()
           for z, p in ((0, 0.7), (1, 0.3))]
    dens = torch.distributions.Normal(0.0, 1.0).log_prob(grid).exp() * (lik[0] + lik[1])
    dens = dens / dens.sum()
    mean = (grid * dens).sum()
    var = ((grid - mean) ** 2 * dens).sum()
    z_mean, z_var = moment_z_scores(mcmc.get_samples(group_by_chain=True)["loc"][..., None], mean, var)
    assert (z_mean < 4).all() and (z_var < 4).all(), (z_mean, z_var)
    with pytest.raises(ValueError, match=r"^mixture: cannot vectorize over chains: .*\['z'\] are discrete"):
        run(NUTS(mixture), y, chain_method="vectorized")


COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)


def one_point_potential(x):
    """NumPyro's contract: one point `[2]` -> a scalar; `linalg.solve` has no batch of right-hand sides here."""
    return 0.5 * x @ torch.linalg.solve(COV.to(x.dtype), x)


def test_a_potential_of_one_point_is_vmapped_and_samples_the_gaussian():
    mcmc = run(NUTS(potential_fn=one_point_potential), init_params=torch.zeros(4, 2, dtype=torch.float64))
    assert mcmc.target.method == "vmap"
    draws = mcmc.get_samples(group_by_chain=True)
    assert draws.shape == (4, 400, 2)
    z_mean, z_var = moment_z_scores(draws, torch.zeros(2), COV.diagonal())
    assert (z_mean < 4).all() and (z_var < 4).all(), (z_mean, z_var)


def test_a_potential_of_a_dict_keeps_the_names():
    def potential(p):  # a ~ N(1, I_2), b ~ N(0, 4)
        return 0.5 * ((p["a"] - 1.0) ** 2).sum() + 0.5 * p["b"] ** 2 / 4.0

    init = {"a": torch.zeros(4, 2, dtype=torch.float64), "b": torch.zeros(4, dtype=torch.float64)}
    mcmc = run(NUTS(potential_fn=potential), init_params=init)
    s = mcmc.get_samples(group_by_chain=True)
    assert sorted(s) == ["a", "b"] and s["a"].shape == (4, 400, 2) and s["b"].shape == (4, 400)
    draws = torch.cat([s["a"], s["b"][..., None]], -1)
    z_mean, z_var = moment_z_scores(draws, [1.0, 1.0, 0.0], [1.0, 1.0, 4.0])
    assert (z_mean < 4).all() and (z_var < 4).all(), (z_mean, z_var)
    assert set(mcmc.to_arviz().posterior.data_vars) == {"a", "b"}
    assert mcmc.last_state.z["a"].shape == (4, 2)


def test_a_vectorized_potential_is_called_once_per_evaluation():
    calls = []

    def potential(x):
        calls.append(x.shape)
        return 0.5 * (x ** 2).sum(-1)

    mcmc = run(HMC(potential_fn=potential, num_steps=3), init_params=torch.zeros(4, 2), num_warmup=5,
               num_samples=5)
    assert mcmc.target.method == "vectorized" and calls[-1] == (4, 2)


def test_warmup_then_run_samples_without_adapting_again():
    mcmc = MCMC(NUTS(linear_regression), num_warmup=200, num_samples=300, num_chains=4, progress_bar=False)
    mcmc.warmup(0, X, y=Y, collect_warmup=True)
    assert mcmc.get_samples(group_by_chain=True)["w"].shape == (4, 200, D)
    state = mcmc.post_warmup_state
    base = state.kernel.base
    step, inv_mass = float(torch.as_tensor(base.step_size)), base.inv_mass.clone()
    mcmc.run(1, X, y=Y)
    assert mcmc.result.num_grad_evals_warmup == 0
    assert float(torch.as_tensor(base.step_size)) == step and torch.equal(base.inv_mass, inv_mass)
    used = mcmc.get_extra_fields()["step_size"]
    assert torch.allclose(used, torch.full_like(used, step))
    assert_linear_posterior(mcmc.get_samples(group_by_chain=True)["w"])


def test_post_warmup_state_is_last_state_continues_the_chains(linear):
    mcmc = MCMC(NUTS(linear_regression), num_warmup=100, num_samples=50, num_chains=2, progress_bar=False)
    mcmc.run(0, X, y=Y)
    last = mcmc.last_state
    assert isinstance(last.rng_key, int) and last.z["w"].shape == (2, D) and last.potential_energy.shape == (2,)
    mcmc.post_warmup_state = mcmc.last_state
    mcmc.run(mcmc.post_warmup_state.rng_key, X, y=Y)
    assert mcmc.result.num_grad_evals_warmup == 0
    with pytest.raises(ValueError, match="post_warmup_state is set"):
        mcmc.run(0, X, y=Y, init_params={"w": torch.zeros(D)})


def test_thinning_keeps_every_kth_draw_of_the_same_chain():
    full = run(HMC(linear_regression, num_steps=3), X, y=Y, num_warmup=30, num_samples=40, num_chains=2)
    thin = run(HMC(linear_regression, num_steps=3), X, y=Y, num_warmup=30, num_samples=40, num_chains=2,
               thinning=4)
    torch.testing.assert_close(thin.get_samples(group_by_chain=True)["w"],
                               full.get_samples(group_by_chain=True)["w"][:, 3::4])


def test_extra_fields_and_print_summary(linear, capsys):
    mcmc = run(NUTS(linear_regression), X, y=Y, num_warmup=50, num_samples=50, num_chains=2,
               extra_fields=("accept_prob", "potential_energy", "diverging"))
    fields = mcmc.get_extra_fields(group_by_chain=True)
    assert sorted(fields) == ["accept_prob", "diverging", "potential_energy"]
    assert all(v.shape == (2, 50) for v in fields.values())
    linear.print_summary(prob=0.8)
    out = capsys.readouterr().out
    assert "w[0]" in out and "w_norm2" not in out and "hdi_10%" in out and "Number of divergences" in out
    linear.print_summary(exclude_deterministic=False)
    assert "w_norm2" in capsys.readouterr().out


def test_arviz_export_has_pointwise_log_likelihood_observed_data_and_predictions():
    yb = (Y > 0).double()
    fits = {}
    for name, cols in (("full", slice(None)), ("first", slice(0, 1))):
        mcmc = run(NUTS(logistic_regression), X[:, cols], y=yb, num_warmup=100, num_samples=100, num_chains=2)
        fits[name] = mcmc.to_arviz(posterior_predictive=True)
    idata = fits["full"]
    assert idata.log_likelihood["y"].shape == (2, 100, N)
    np.testing.assert_array_equal(idata.observed_data["y"].values, yb.numpy())
    assert idata.posterior_predictive["y"].shape == (2, 100, N)
    assert set(np.unique(idata.posterior_predictive["y"].values)) <= {0.0, 1.0}
    # the pointwise log-likelihood is Bernoulli's at that draw
    w, b = idata.posterior["w"].values[1, 7], idata.posterior["b"].values[1, 7]
    logits = X.numpy() @ w + b
    expected = yb.numpy() * logits - np.logaddexp(0.0, logits)
    np.testing.assert_allclose(idata.log_likelihood["y"].values[1, 7], expected, rtol=1e-6)
    assert np.isfinite(az.loo(idata).elpd_loo)
    assert list(az.compare(fits).index) == ["full", "first"]  # the model with the signal ranks first


def counts_model(y):
    n = pyro.sample("n", dist.Poisson(3.0))
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(loc + n, 1.0), obs=y)


def half_normal_potential(x):
    return torch.where(x >= 0, 0.5 * x ** 2, torch.full_like(x, float("inf"))).sum()


@pytest.mark.parametrize("make, message", [
    (lambda: run(NUTS(counts_model), torch.tensor(1.0)), r"counts_model: Pyro cannot build a potential .* site 'n'"),
    (lambda: run(NUTS(potential_fn=half_normal_potential), init_params=torch.tensor([[1.0], [-1.0], [2.0], [-3.0]])),
     r"not finite at the start of chain\(s\) \[1, 3\]"),
    (lambda: run(NUTS(linear_regression), X, y=Y, init_params={"w": torch.full((4, D), float("nan"))}),
     r"not finite at the start of chain\(s\) \[0, 1, 2, 3\]"),
    (lambda: run(NUTS(linear_regression), X, y=Y, init_params={"w": torch.zeros(3, D)}),
     r"init_params\['w'\] must have shape \[3\] or \[num_chains, \*shape\] = \[4, 3\], got \[3, 3\]"),
    (lambda: run(NUTS(potential_fn=one_point_potential), init_params=torch.zeros(3, 2)),
     r"init_params must have shape \[num_chains, \*event\] = \[4, \.\.\.\], got \[3, 2\]"),
    (lambda: run(NUTS(potential_fn=lambda p: p["a"].sum()), init_params={"a": torch.zeros(2, 3)}),
     r"init_params values must have shape \[num_chains, \*shape\] = \[4, \.\.\.\], got \{'a': \[2, 3\]\}"),
])
def test_bad_input_is_one_line(make, message):
    with pytest.raises(ValueError, match=message) as err:
        make()
    assert "\n" not in str(err.value)

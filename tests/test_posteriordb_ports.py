"""posteriordb ports: each model's log density against a hand-written Stan log density, chain vectorization,
reference-draw names, `compare`'s Monte Carlo tolerances, and NUTS runs that match the reference draws.

The hand-written densities below follow the Stan programs line by line in NumPy/SciPy, with Stan's transformed
data recomputed from posteriordb's raw data; they share no code with the ports. Differences between two points
are compared, so normalizing constants (Stan's dropped ones, truncations) do not matter.
"""
import functools
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from scipy import stats
from scipy.integrate import solve_ivp
from scipy.special import logsumexp

import entropy_mcmc
from entropy_mcmc.benchmarks.posteriordb import PORTS, Port, compare, get_port, load_posterior
from entropy_mcmc.benchmarks.posteriordb.models import hmm_log_marginal, linear_recurrence, stan_names
from entropy_mcmc.pyro.target import PyroTarget

pytestmark = pytest.mark.usefixtures("one_thread")

DB = Path(__file__).parents[1].parent / "shared/data/posteriordb/posterior_database"
needs_db = pytest.mark.skipif(not DB.is_dir(), reason=f"no posterior database at {DB} (the shared data folder)")
ODE = ("hudson_lynx_hare-lotka_volterra", "one_comp_mm_elim_abs-one_comp_mm_elim_abs")


@functools.lru_cache(maxsize=None)
def posterior(name):
    pytest.importorskip("posteriordb")
    return load_posterior(DB, name)


@functools.lru_cache(maxsize=None)
def raw_data(name):
    pdb = pytest.importorskip("posteriordb").PosteriorDatabase(str(DB))
    return {k: np.asarray(v, dtype=np.float64) for k, v in pdb.posterior(name).data.values().items()}


def _needs_extras(name):
    for pkg in get_port(name).extras:
        pytest.importorskip(pkg)


# -- hand-written Stan log densities: p holds the parameters by Stan name (NumPy), d posteriordb's data ----------
norm, cauchy = stats.norm.logpdf, stats.cauchy.logpdf


def lognormal(x, mu, sigma):
    return stats.lognorm.logpdf(x, s=sigma, scale=np.exp(mu))


def regression(y, mean, sigma):
    return norm(y, mean, sigma).sum()


def stan_arma11(p, d):
    y, mu, phi, theta, sigma = d["y"], p["mu"], p["phi"], p["theta"], p["sigma"]
    err = np.empty_like(y)
    err[0] = y[0] - (mu + phi * mu)
    for t in range(1, len(y)):
        err[t] = y[t] - (mu + phi * y[t - 1] + theta * err[t - 1])
    return (norm(mu, 0, 10) + norm(phi, 0, 2) + norm(theta, 0, 2) + cauchy(sigma, 0, 2.5)
            + norm(err, 0, sigma).sum())


def stan_blr(p, d):
    return norm(p["beta"], 0, 10).sum() + norm(p["sigma"], 0, 10) + regression(d["y"], d["X"] @ p["beta"], p["sigma"])


def stan_diamonds(p, d):
    x = d["X"][:, 1:]
    xc = x - x.mean(0)
    return (norm(p["b"], 0, 1).sum() + stats.t.logpdf(p["Intercept"], 3, 8, 10)
            + stats.t.logpdf(p["sigma"], 3, 0, 10) - stats.t.logsf(0, 3, 0, 10)
            + regression(d["Y"], p["Intercept"] + xc @ p["b"], p["sigma"]))


def stan_earn_height(p, d):
    b = p["beta"]
    return regression(d["earn"], b[0] + b[1] * d["height"], p["sigma"])


def stan_logearn_interaction_z(p, d):
    z = (d["height"] - d["height"].mean()) / d["height"].std(ddof=1)
    b = p["beta"]
    return regression(np.log(d["earn"]), b[0] + b[1] * z + b[2] * d["male"] + b[3] * z * d["male"], p["sigma"])


def stan_garch11(p, d):
    y, mu, alpha0, alpha1, beta1 = d["y"], p["mu"], p["alpha0"], p["alpha1"], p["beta1"]
    sigma = np.empty_like(y)
    sigma[0] = d["sigma1"]
    for t in range(1, len(y)):
        sigma[t] = np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma[t - 1] ** 2)
    return norm(y, mu, sigma).sum()


def stan_gp_pois_regr(p, d):
    x = d["x"]
    cov = p["alpha"] ** 2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / p["rho"] ** 2) + 1e-10 * np.eye(len(x))
    f = np.linalg.cholesky(cov) @ p["f_tilde"]
    np.testing.assert_allclose(p["f"], f, rtol=1e-9, atol=1e-12)  # the port's deterministic site
    return (stats.gamma.logpdf(p["rho"], 25, scale=1 / 4) + norm(p["alpha"], 0, 2) + norm(p["f_tilde"], 0, 1).sum()
            + stats.poisson.logpmf(d["k"], np.exp(f)).sum())


def forward(log_theta, log_emit):
    """Stan's forward algorithm as written in hmm_example.stan and hmm_drive_0.stan."""
    n, k = log_emit.shape
    gamma = np.empty((n, k))
    gamma[0] = log_emit[0]
    for t in range(1, n):
        for j in range(k):
            gamma[t, j] = logsumexp([gamma[t - 1, i] + log_theta[i, j] + log_emit[t, j] for i in range(k)])
    return logsumexp(gamma[-1])


def stan_hmm_example(p, d):
    mu = p["mu"]
    log_emit = norm(d["y"][:, None], mu[None, :], 1)
    return norm(mu[0], 3, 1) + norm(mu[1], 10, 1) + forward(np.log([p["theta1"], p["theta2"]]), log_emit)


def stan_hmm_drive_0(p, d):
    phi, lam, alpha = p["phi"], p["lambda"], d["alpha"]
    log_emit = (stats.expon.logpdf(d["u"][:, None], scale=1 / phi[None, :])
                + stats.expon.logpdf(d["v"][:, None], scale=1 / lam[None, :]))
    return (stats.dirichlet.logpdf(p["theta1"], alpha[0]) + stats.dirichlet.logpdf(p["theta2"], alpha[1])
            + norm(phi[0], 0, 1) + norm(phi[1], 3, 1) + norm(lam[0], 0, 1) + norm(lam[1], 3, 1)
            + forward(np.log([p["theta1"], p["theta2"]]), log_emit))


def stan_kidscore_momhsiq(p, d):
    b = p["beta"]
    return cauchy(p["sigma"], 0, 2.5) + regression(d["kid_score"], b[0] + b[1] * d["mom_hs"] + b[2] * d["mom_iq"],
                                                   p["sigma"])


def stan_kidscore_mom_work(p, d):
    b, w = p["beta"], d["mom_work"]
    mean = b[0] + b[1] * (w == 2) + b[2] * (w == 3) + b[3] * (w == 4)
    return regression(d["kid_score"], mean, p["sigma"])


def stan_kilpisjarvi(p, d):
    return (norm(p["alpha"], d["pmualpha"], d["psalpha"]) + norm(p["beta"], d["pmubeta"], d["psbeta"])
            + regression(d["y"], p["alpha"] + p["beta"] * d["x"], p["sigma"]))


def stan_low_dim_gauss_mix(p, d):
    mu, sigma, theta, y = p["mu"], p["sigma"], p["theta"], d["y"]
    log_mix = np.logaddexp(np.log(theta) + norm(y, mu[0], sigma[0]), np.log1p(-theta) + norm(y, mu[1], sigma[1]))
    return norm(sigma, 0, 2).sum() + norm(mu, 0, 2).sum() + stats.beta.logpdf(theta, 5, 5) + log_mix.sum()


def stan_logmesquite_logvas(p, d):
    b = p["beta"]
    mean = (b[0] + b[1] * np.log(d["diam1"] * d["diam2"] * d["canopy_height"]) + b[2] * np.log(d["diam1"] * d["diam2"])
            + b[3] * np.log(d["diam1"] / d["diam2"]) + b[4] * np.log(d["total_height"]) + b[5] * np.log(d["density"])
            + b[6] * d["group"])
    return regression(np.log(d["weight"]), mean, p["sigma"])


def stan_nes(p, d):
    b, age = p["beta"], d["age_discrete"]
    mean = (b[0] + b[1] * d["real_ideo"] + b[2] * d["race_adj"] + b[3] * (age == 2) + b[4] * (age == 3)
            + b[5] * (age == 4) + b[6] * d["educ1"] + b[7] * d["gender"] + b[8] * d["income"])
    return regression(d["partyid7"], mean, p["sigma"])


def scipy_lotka_volterra(p, d):
    """z at ts, solved by SciPy (DOP853, tolerances 1e-11)."""
    a, b, c, e = p["theta"]

    def dz_dt(t, z):
        return [(a - b * z[1]) * z[0], (-c + e * z[0]) * z[1]]

    return solve_ivp(dz_dt, (0, d["ts"][-1]), p["z_init"], t_eval=d["ts"], method="DOP853", rtol=1e-11,
                     atol=1e-11).y.T


def stan_lotka_volterra(p, d):
    z, sigma = scipy_lotka_volterra(p, d), p["sigma"]
    return (norm(p["theta"][[0, 2]], 1, 0.5).sum() + norm(p["theta"][[1, 3]], 0.05, 0.05).sum()
            + lognormal(sigma, -1, 1).sum() + lognormal(p["z_init"], np.log(10), 1).sum()
            + lognormal(d["y_init"], np.log(p["z_init"]), sigma).sum() + lognormal(d["y"], np.log(z), sigma).sum())


def scipy_one_comp_mm_elim_abs(p, d):
    """C at times, solved by SciPy (Radau, tolerances 1e-11)."""
    k_a, K_m, V_m = p["k_a"], p["K_m"], p["V_m"]

    def dc_dt(t, c):
        dose = np.exp(-k_a * t) * d["D"] * k_a / d["V"] if t > 0 else 0.0
        return [dose - (V_m / d["V"]) * c[0] / (K_m + c[0])]

    return solve_ivp(dc_dt, (float(d["t0"]), d["times"][-1]), [0.0], t_eval=d["times"], method="Radau", rtol=1e-11,
                     atol=1e-11).y[0]


def stan_one_comp_mm_elim_abs(p, d):
    c = scipy_one_comp_mm_elim_abs(p, d)
    return (cauchy(p["k_a"], 0, 1) + cauchy(p["K_m"], 0, 1) + cauchy(p["V_m"], 0, 1) + cauchy(p["sigma"], 0, 1)
            + lognormal(d["C_hat"], np.log(c), p["sigma"]).sum())


STAN = {"arma-arma11": stan_arma11, "bball_drive_event_0-hmm_drive_0": stan_hmm_drive_0,
        "diamonds-diamonds": stan_diamonds, "earnings-earn_height": stan_earn_height,
        "earnings-logearn_interaction_z": stan_logearn_interaction_z, "garch-garch11": stan_garch11,
        "gp_pois_regr-gp_pois_regr": stan_gp_pois_regr, "hmm_example-hmm_example": stan_hmm_example,
        "hudson_lynx_hare-lotka_volterra": stan_lotka_volterra, "kidiq-kidscore_momhsiq": stan_kidscore_momhsiq,
        "kidiq_with_mom_work-kidscore_mom_work": stan_kidscore_mom_work,
        "kilpisjarvi_mod-kilpisjarvi": stan_kilpisjarvi, "low_dim_gauss_mix-low_dim_gauss_mix": stan_low_dim_gauss_mix,
        "mesquite-logmesquite_logvas": stan_logmesquite_logvas, "nes2000-nes": stan_nes,
        "one_comp_mm_elim_abs-one_comp_mm_elim_abs": stan_one_comp_mm_elim_abs, "sblrc-blr": stan_blr}
# the port samples beta1_unit = beta1 / (1 - alpha1): its density is Stan's times that Jacobian
JACOBIAN = {"garch-garch11": lambda p: np.log1p(-p["alpha1"])}


def test_every_port_has_a_stan_density():
    assert sorted(STAN) == sorted(PORTS)


def model_log_density(model, kwargs, values):
    """The model's log joint at constrained latent values, and every sample site's value (deterministic ones too)."""
    with pyro.validation_enabled(False):
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(**kwargs)
    values = {n: s["value"].detach().numpy() for n, s in trace.nodes.items() if s["type"] == "sample"}
    return trace.log_prob_sum().item(), values


def points(name, port, kwargs, num):
    """Constrained latent values: random unconstrained points for the cheap ports, reference draws for the ODEs
    (posterior values, where the dynamics are tame)."""
    if name in ODE:
        ref = posterior(name).reference
        lengths = {s: sum(k.startswith(f"{s}[") for k in ref) for s in port.sites}  # vectors or scalars
        shapes = {s: (n,) if n else () for s, n in lengths.items()}
        return [{s: torch.tensor([ref[k][i, 7 * i] for k in stan_names(s, shape)], dtype=torch.float64)
                 .reshape(shape) for s, shape in shapes.items()} for i in range(num)]
    target = PyroTarget(port.model, (), kwargs, vectorize=False, check=False)
    x = target.initial_position(num, radius=1.5, generator=torch.Generator().manual_seed(3))
    c = target.constrain(x)
    return [{k: v[i] for k, v in c.items()} for i in range(num)]


@needs_db
@pytest.mark.parametrize("name", sorted(PORTS))
def test_log_density_differences_equal_the_stan_programs(name):
    _needs_extras(name)
    port, data = get_port(name), raw_data(name)
    kwargs = posterior(name).kwargs
    model_lp, stan_lp = [], []
    for values in points(name, port, kwargs, 3):
        lp, sites = model_log_density(port.model, kwargs, values)
        model_lp.append(lp)
        stan_lp.append(STAN[name](sites, data) + JACOBIAN.get(name, lambda p: 0.0)(sites))
    model_lp, stan_lp = np.array(model_lp), np.array(stan_lp)
    assert np.all(np.isfinite(model_lp)) and np.all(np.isfinite(stan_lp))
    # the ODE ports' fixed-step RK4 is within ~4e-6 (relative) of SciPy's tight solution at reference draws, which
    # moves the log density by up to ~2e-4 (Stan's own rk45, at its tolerances, is ~1e-3 off the solution there)
    tol = 1e-5 if name in ODE else 1e-10
    np.testing.assert_allclose(model_lp[1:] - model_lp[0], stan_lp[1:] - stan_lp[0],
                               rtol=0, atol=tol * (1 + np.abs(stan_lp).max()))


ODE_SOLUTION = {"hudson_lynx_hare-lotka_volterra": ("z", scipy_lotka_volterra),
                "one_comp_mm_elim_abs-one_comp_mm_elim_abs": ("C", scipy_one_comp_mm_elim_abs)}


@needs_db
@pytest.mark.parametrize("name", ODE)
def test_ode_solutions_match_scipy_at_the_reference_draws(name):
    # 20 reference draws (every 500th) in one batched run, as the chains are: within 1e-5 of SciPy's tight
    # solution, Stan's rk45 rtol, and closer than Stan's solvers get (~1e-3 for rk45 at rtol 1e-5, atol 1e-3)
    post, data = posterior(name), raw_data(name)
    site, solve = ODE_SOLUTION[name]
    ref = {k: v.reshape(-1)[::500] for k, v in post.reference.items()}
    lengths = {s: sum(k.startswith(f"{s}[") for k in ref) for s in post.port.sites}  # vectors or scalars
    values = {s: torch.as_tensor(np.stack([ref[k] for k in stan_names(s, (n,))], -1) if n else ref[s])
              for s, n in lengths.items()}
    with pyro.plate("_chains", 20, dim=-1):
        trace = poutine.trace(poutine.condition(post.port.model, data=values)).get_trace(**post.kwargs)
    got = trace.nodes[site]["value"].reshape(20, -1).numpy()
    for i, row in enumerate(got):
        exact = solve({k: v[i].numpy() for k, v in values.items()}, data).reshape(-1)
        np.testing.assert_allclose(row, exact, rtol=1e-5, atol=0)


@needs_db
def test_ode_refines_a_chain_alone_where_its_error_estimate_is_large():
    # fast dynamics (a NUTS warmup chain sat here): at the default steps RK4 is off by a factor ~1e3 and fits the
    # data 230 nats better than the true solution; the error estimate sends this chain alone to finer steps
    post, data = posterior(ODE[0]), raw_data(ODE[0])
    wild = {"theta": [2.709, 0.1638, 5.744, 1.696], "z_init": [0.6653, 0.2113], "sigma": [0.95, 0.56]}
    tame = {k: [post.reference[n][0, 0] for n in stan_names(k, (len(v),))] for k, v in wild.items()}
    values = {k: torch.tensor([wild[k], tame[k]], dtype=torch.float64) for k in wild}
    with pyro.plate("_chains", 2, dim=-1):
        both = poutine.trace(poutine.condition(post.port.model, data=values)).get_trace(**post.kwargs).nodes["z"]
    for i, point in enumerate((wild, tame)):
        alone = model_log_density(post.port.model, post.kwargs,
                                  {k: torch.tensor(v, dtype=torch.float64) for k, v in point.items()})[1]
        np.testing.assert_array_equal(both["value"][i].numpy(), alone["z"])
        exact = scipy_lotka_volterra({k: np.array(v) for k, v in point.items()}, data)
        np.testing.assert_allclose(alone["z"], exact, rtol=1e-3 if point is wild else 1e-5)


@needs_db
def test_one_comp_is_finite_across_the_initial_box():
    # its elimination is stiff where C << K_m; the default RK4 step keeps the whole box Pyro draws initial points
    # from ([-2, 2] unconstrained) in RK4's stability region
    target = PyroTarget(get_port(ODE[1]).model, (), posterior(ODE[1]).kwargs, vectorize=True)
    corners = torch.tensor(list(itertools.product([-2.0, 2.0], repeat=target.dim)), dtype=torch.float64)
    x = torch.cat([corners, (torch.rand(200, target.dim, generator=torch.Generator().manual_seed(0),
                                        dtype=torch.float64) * 2 - 1) * 2])
    u, g = target.energy_and_grad(x)
    assert torch.isfinite(u).all() and torch.isfinite(g).all()


@needs_db
@pytest.mark.parametrize("name", sorted(PORTS))
def test_port_vectorizes_over_chains(name):
    # the constructor checks the energy under the chain plate against Pyro's potential, chain by chain
    target = PyroTarget(get_port(name).model, (), posterior(name).kwargs, vectorize=True)
    u, g = target.energy_and_grad(target.initial_position(5, generator=torch.Generator().manual_seed(0)))
    assert u.shape == (5,) and torch.isfinite(u).all() and torch.isfinite(g).all()


@needs_db
@pytest.mark.parametrize("name", sorted(PORTS))
def test_flattened_names_are_the_reference_keys(name):
    post = posterior(name)
    _needs_extras(name)
    sites = model_log_density(post.port.model, post.kwargs, points(name, post.port, post.kwargs, 1)[0])[1]
    shapes = {n: v.shape for n, v in sites.items()}
    samples = {s: torch.zeros(2, 3, *shapes[s]) for s in post.port.sites}
    assert list(post.port.flatten_draws(samples)) == list(post.reference)
    assert all(v.shape == (10, 1000) for v in post.reference.values())


def test_stan_names_are_one_based_and_column_major():
    assert stan_names("sigma", ()) == ("sigma",)
    assert stan_names("a", (2, 3)) == ("a[1,1]", "a[2,1]", "a[1,2]", "a[2,2]", "a[1,3]", "a[2,3]")
    a = torch.arange(6.0).reshape(2, 3).expand(4, 5, 2, 3)
    flat = Port(model=None, prepare=None, sites=("a",)).flatten_draws({"a": a})
    assert flat["a[2,1]"].shape == (4, 5) and float(flat["a[2,1]"][0, 0]) == 3.0 and float(flat["a[1,3]"][0, 0]) == 2.0


def test_scans_equal_their_loops():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 1, generator=gen, dtype=torch.float64), torch.randn(3, 37, generator=gen, dtype=torch.float64)
    x = [b[:, 0]]
    for t in range(1, 37):
        x.append(a[:, 0] * x[-1] + b[:, t])
    torch.testing.assert_close(linear_recurrence(a, b), torch.stack(x, -1))
    log_trans = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64).log_softmax(-1)
    log_emit = torch.randn(3, 29, 2, generator=gen, dtype=torch.float64)
    loops = [forward(log_trans[i].numpy(), log_emit[i].numpy()) for i in range(3)]
    torch.testing.assert_close(hmm_log_marginal(log_trans, log_emit), torch.tensor(loops, dtype=torch.float64))


def test_unknown_port_and_database_errors(tmp_path):
    with pytest.raises(ValueError, match="ported: .*sblrc-blr"):
        get_port("eight_schools-eight_schools_noncentered")
    with pytest.raises(ValueError, match="no posterior database"):
        load_posterior(tmp_path / "nowhere", "sblrc-blr")
    pytest.importorskip("posteriordb")
    (tmp_path / "posteriors").mkdir()
    info = {"name": "arma-arma11", "model_name": "arma11", "data_name": "arma", "reference_posterior_name": None}
    (tmp_path / "posteriors" / "arma-arma11.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not in the database"):
        load_posterior(tmp_path, "sblrc-blr")
    with pytest.raises(ValueError, match="no reference draws"):
        load_posterior(tmp_path, "arma-arma11")


# -- compare ------------------------------------------------------------------------------------------------
def ar1_draws(seed, chains=10, draws=1000, keys=("a", "b[1]", "b[2]"), rho=0.5):
    """Stationary AR(1) chains (autocorrelated, as MCMC draws are) per key, each with its own mean and sd."""
    gen = np.random.default_rng(seed)
    out = {}
    for i, k in enumerate(keys):
        x = np.empty((chains, draws))
        x[:, 0] = gen.normal(size=chains)
        for t in range(1, draws):
            x[:, t] = rho * x[:, t - 1] + math.sqrt(1 - rho ** 2) * gen.normal(size=chains)
        out[k] = (i + 1.0) * x + 10.0 * i
    return out


def test_compare_passes_the_reference_and_independent_draws_of_it():
    ref = ar1_draws(0)
    same = compare(ref, ref)
    assert same["passed"] and same["max_mean_error"] == 0.0 and same["worst_sd_ratio"] == 1.0
    assert same["fwer"] == 0.01 and same["z"] == pytest.approx(stats.norm.ppf(1 - 0.01 / 12))
    other = compare(ar1_draws(1, chains=4, draws=500), ref)
    assert other["passed"], other["failed"]
    assert 200 < other["min_ess_bulk"] < 2000


def test_compare_fails_a_mean_shifted_by_five_mcses_and_an_sd_scaled_by_one_and_a_half():
    import arviz as az

    ref = ar1_draws(0)
    shifted = dict(ref, **{"b[1]": ref["b[1]"] + 5 * np.hypot(az.mcse(ref["b[1]"]), az.mcse(ref["b[1]"]))})
    result = compare(shifted, ref)
    assert not result["passed"] and result["failed"] == ["b[1]"]
    assert not result["keys"]["b[1]"]["mean_ok"] and result["keys"]["b[1]"]["sd_ok"]
    m = ref["a"].mean()
    wide = compare(dict(ref, a=m + 1.5 * (ref["a"] - m)), ref)
    assert wide["failed"] == ["a"] and not wide["keys"]["a"]["sd_ok"]
    assert wide["worst_sd_ratio"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="lack the reference key"):
        compare({"a": ref["a"]}, ref)


def test_compare_fails_chains_that_did_not_mix_even_when_their_mcse_covers_the_reference():
    ref = ar1_draws(0)
    # four chains stuck near different values: a huge MCSE, so the means are "within tolerance"
    stuck = {k: v[:4, :300] * 0.01 + np.array([[-3.0], [-1.0], [1.0], [3.0]]) * v.std() + v.mean()
             for k, v in ref.items()}
    result = compare(stuck, ref)
    assert not result["failed"]  # the tolerance alone would pass them
    assert not result["converged"] and not result["passed"] and result["max_rhat"] > 1.5


def test_compare_judges_a_heavy_tailed_key_by_its_quantiles_where_its_moments_have_no_valid_mcse():
    """Student-t draws with 3 degrees of freedom (finite mean, infinite fourth moment: the sd's MCSE is invalid) and
    Cauchy draws (no mean, no sd: their sd ratio ranged 0.12-12 over 20 seeds): independent draws of the same laws
    pass on quantiles (20 of 20 seeds), and the same draws widened by 1.3 fail."""
    gen = np.random.default_rng(0)
    normal = ar1_draws(0, keys=("a",))["a"]
    ref = {"a": normal, "t3": gen.standard_t(3, size=(10, 1000)), "cauchy": gen.standard_cauchy(size=(10, 1000))}
    ours = {"a": ar1_draws(1, chains=4, draws=500, keys=("a",))["a"], "t3": gen.standard_t(3, size=(4, 2500)),
            "cauchy": gen.standard_cauchy(size=(4, 2500))}
    result = compare(ours, ref)
    keys = result["keys"]
    assert keys["a"]["tail_khat"] < 0.25 and keys["a"]["mean_ok"] and keys["a"]["sd_ok"]
    assert 0.25 <= keys["t3"]["tail_khat"] < 0.5 and keys["t3"]["mean_ok"] and keys["t3"]["sd_ok"] is None
    assert keys["cauchy"]["tail_khat"] >= 0.5 and keys["cauchy"]["mean_ok"] is None
    assert result["heavy_tailed"] == ["t3", "cauchy"] and result["tests"] == 2 + 1 + 5 + 5
    assert result["passed"], result["failed"]
    assert result["z"] == pytest.approx(stats.norm.ppf(1 - 0.01 / (2 * 13)))
    wide = compare(dict(ours, t3=1.3 * ours["t3"], cauchy=1.3 * ours["cauchy"]), ref)
    assert wide["failed"] == ["t3", "cauchy"]
    assert not all(v["ok"] for v in wide["keys"]["t3"]["quantiles"].values())


# -- NUTS against the reference draws ---------------------------------------------------------------------------
def run_and_compare(name, num_warmup=300, num_samples=300):
    post = posterior(name)
    start = time.perf_counter()
    mcmc = entropy_mcmc.MCMC(entropy_mcmc.NUTS(post.port.model), num_warmup=num_warmup, num_samples=num_samples,
                             num_chains=4, progress_bar=False)
    mcmc.run(0, **post.kwargs)
    result = compare(post.draws(mcmc.get_samples(group_by_chain=True)), post.reference)
    print(f"{name}: {time.perf_counter() - start:.1f} s, max mean error {result['max_mean_error']:.3f} sd, "
          f"worst sd ratio {result['worst_sd_ratio']:.3f}, min ESS {result['min_ess_bulk']:.0f}")
    return result


@needs_db
@pytest.mark.parametrize("name", ["sblrc-blr", "earnings-logearn_interaction_z", "garch-garch11"])
def test_nuts_matches_the_reference_draws(name):
    result = run_and_compare(name)
    assert result["passed"], {k: result["keys"][k] for k in result["failed"]}


# 15 s to 2.5 min each on one core (earn_height 4 min: an unscaled regression, earnings in dollars, where 300 warmup
# steps leave two coefficients' sds 13% low; 1000 + 1000 pass). Not here: arma-arma11, where a chain started at
# |theta| > 1 (the explosive region, potential ~1e109) drags the step size shared by the chains to 1e-4 and every
# tree to 1023 steps, and the ODE ports: lotka_volterra takes ~18 min (~30 ms per gradient for all chains, ~47 per
# iteration). one_comp_mm_elim_abs (3.5 min) is judged on K_m's and V_m's quantiles: their tails (Pareto k-hat 0.4)
# leave the sd without a valid MCSE (`compare`)
@needs_db
@pytest.mark.slow
@pytest.mark.parametrize("name", ["kidiq-kidscore_momhsiq", "earnings-earn_height",
                                  "kidiq_with_mom_work-kidscore_mom_work", "mesquite-logmesquite_logvas",
                                  "nes2000-nes", "low_dim_gauss_mix-low_dim_gauss_mix", "gp_pois_regr-gp_pois_regr",
                                  "hmm_example-hmm_example", "one_comp_mm_elim_abs-one_comp_mm_elim_abs"])
def test_nuts_matches_the_reference_draws_slow(name):
    result = run_and_compare(name, *((1000, 1000) if name == "earnings-earn_height" else ()))
    assert result["passed"], {k: result["keys"][k] for k in result["failed"]}

"""Pyro ports of 17 posteriordb Stan programs (stan-dev/posteriordb, `models/stan/*.stan`), one function each.

Each port keeps the Stan program's parameter names, constraints, priors and likelihood:
Stan's implicit flat prior on a (constrained) parameter is `Flat`, an `ImproperUniform` that can
also be traced; `target +=` terms that are not a distribution of the data are `pyro.factor` sites;
a normal prior on a positive or ordered parameter (no Pyro distribution has that support) is a
flat site plus the prior density as a factor, as Stan computes it. Transformed parameters are
`pyro.deterministic` sites. Stan's dropped normalizing constants (`~`) and truncation constants
(a half-Cauchy is twice a Cauchy) change the log density by constants only.

Every model runs batched: the library evaluates all chains in one run under an outer
`pyro.plate("_chains", C, dim=-(N + 1))`, so a global site holds `[C, 1, ..., 1, *shape]`. The code
indexes parameters with `[..., i]`, reduces with `dim=-1`, and writes the ARMA and GARCH recursions
and the HMM forward algorithm as log-depth scans over time (`linear_recurrence`, `hmm_log_marginal`)
rather than Python loops of T steps.

Differences from Stan, each with the same posterior:
- garch11: Stan's `beta1 in (0, 1 - alpha1)` has a bound that depends on another parameter, which
  Pyro's fixed per-site transforms cannot follow (they are built once, from the first trace). The port
  samples `beta1_unit` in (0, 1) with `beta1 = (1 - alpha1) beta1_unit` deterministic and adds the
  Jacobian log(1 - alpha1), as Stan's own lower/upper transform does.
- hmm_drive_0's Dirichlet priors on the transition simplexes are the sites' distributions.
- The two ODE models integrate with classical RK4 on fixed grids (`_solve_ode`), in place of Stan's adaptive
  rk45 (lotka_volterra) and BDF (one_comp_mm_elim_abs), so that they vectorize over chains exactly: adaptive
  steps chosen for the whole batch would make each chain's solution depend on the others'. A chain whose
  per-step error estimate exceeds Stan's tolerances is solved again with 4 and then 16 times smaller steps (the
  other chains' steps unchanged), and gets a NaN density past that, as Stan rejects a solve past its step
  budget. At the reference draws no chain needs that, and the solutions are within 4e-6 (relative) of a tight
  SciPy solve, closer than Stan's solvers get (SciPy's RK45 at Stan's rk45 tolerances: ~1e-3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from torch.distributions import biject_to

from ...pyro.models import linear_predictor

__all__ = ["Flat", "Port", "PORTS", "get_port", "stan_names", "linear_recurrence", "hmm_log_marginal"]

DTYPE = torch.float64


class Flat(dist.ImproperUniform):
    """Stan's implicit flat prior on `support`: an `ImproperUniform` (log density 0) whose `sample()` returns
    the image of the unconstrained zero, so Pyro can trace the model before initialization."""

    def __init__(self, support, batch_shape=(), event_shape=(), dtype: torch.dtype = DTYPE):
        super().__init__(support, torch.Size(batch_shape), torch.Size(event_shape))
        self.dtype = dtype

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Flat, _instance)
        new.dtype = self.dtype
        return super().expand(batch_shape, _instance=new)

    def sample(self, sample_shape=torch.Size()):
        t = biject_to(self.support)
        shape = t.inverse_shape(torch.Size(sample_shape) + self.batch_shape + self.event_shape)
        return t(torch.zeros(shape, dtype=self.dtype))


def _flat(name: str, support, like: torch.Tensor, *event_shape: int) -> torch.Tensor:
    return pyro.sample(name, Flat(support, (), event_shape, like.dtype))


def linear_recurrence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x_t = a x_{t-1} + b_t along the last dim (x_1 = b_1) by a doubling (Hillis-Steele) scan: after the step
    with shift s, x_t sums a^(t-k) b_k over the last 2s terms. `a` broadcasts against `b[..., :1]`."""
    x, p, s = b, a, 1
    while s < b.shape[-1]:
        x = x + p * F.pad(x[..., :-s], (s, 0))
        p, s = p * p, 2 * s
    return x


def _log_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The matrix product of exp(a) and exp(b), in log space, over the last two dims."""
    return torch.logsumexp(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)


def hmm_log_marginal(log_trans: torch.Tensor, log_emit: torch.Tensor) -> torch.Tensor:
    """log sum_z prod_t p(z_t | z_{t-1}) p(obs_t | z_t) with a flat start, as the Stan programs' forward
    algorithm (gamma[1, k] = log p(obs_1 | k)); `log_trans` [..., K, K] (from j to k), `log_emit` [..., T, K].

    The T - 1 log-space transfer matrices M_t[j, k] = log_trans[j, k] + log_emit[t, k] are multiplied
    pairwise in a tree (log2 T batched products), which is the forward recursion reassociated."""
    m = log_trans.unsqueeze(-3) + log_emit[..., 1:, None, :]
    while m.shape[-3] > 1:
        half = m.shape[-3] // 2
        paired = _log_matmul(m[..., 0:2 * half:2, :, :], m[..., 1:2 * half:2, :, :])
        m = torch.cat([paired, m[..., 2 * half:, :, :]], dim=-3)
    first = log_emit[..., 0, :]
    if m.shape[-3] == 0:  # a single observation
        return torch.logsumexp(first, dim=-1)
    return torch.logsumexp(first.unsqueeze(-1) + m[..., 0, :, :], dim=(-2, -1))


def _regression(name: str, y: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    with pyro.plate("obs", y.shape[-1], dim=-1):
        return pyro.sample(name, dist.Normal(mean, sigma), obs=y)


def _intercept_and_slopes(beta: torch.Tensor, *columns: torch.Tensor) -> torch.Tensor:
    """beta[1] + sum_j beta[j + 1] * columns[j] (Stan's 1-based beta), for beta [*batch, (1,) p + 1]."""
    return beta[..., 0] + linear_predictor(torch.stack(columns, -1), beta[..., 1:])


# -- linear regressions -------------------------------------------------------------------------------
def blr(X: torch.Tensor, y: torch.Tensor):
    """blr.stan: beta ~ N(0, 10^2), sigma > 0 ~ N(0, 10^2), y ~ N(X beta, sigma^2)."""
    beta = pyro.sample("beta", dist.Normal(y.new_zeros(X.shape[-1]), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(y.new_tensor(10.0)))
    _regression("y", y, linear_predictor(X, beta), sigma)


def diamonds(Y: torch.Tensor, Xc: torch.Tensor, prior_only: bool = False):
    """diamonds.stan (brms): b ~ N(0, 1), Intercept ~ t_3(8, 10), sigma ~ t_3(0, 10) truncated to > 0,
    Y ~ N(Intercept + Xc b, sigma^2) with Xc the centered predictors (`prepare`)."""
    b = pyro.sample("b", dist.Normal(Y.new_zeros(Xc.shape[-1]), 1.0).to_event(1))
    intercept = pyro.sample("Intercept", dist.StudentT(Y.new_tensor(3.0), 8.0, 10.0))
    sigma = pyro.sample("sigma", dist.FoldedDistribution(dist.StudentT(Y.new_tensor(3.0), 0.0, 10.0)))
    if not prior_only:
        _regression("Y", Y, intercept + linear_predictor(Xc, b), sigma)


def earn_height(earn: torch.Tensor, height: torch.Tensor):
    """earn_height.stan: flat beta [2] and sigma > 0, earn ~ N(beta[1] + beta[2] height, sigma^2)."""
    beta = _flat("beta", constraints.real, earn, 2)
    sigma = _flat("sigma", constraints.positive, earn)
    _regression("earn", earn, _intercept_and_slopes(beta, height), sigma)


def logearn_interaction_z(log_earn: torch.Tensor, z_height: torch.Tensor, male: torch.Tensor,
                          inter: torch.Tensor):
    """logearn_interaction_z.stan: flat beta [4] and sigma > 0, log_earn ~ N(beta . (1, z_height, male, inter),
    sigma^2)."""
    beta = _flat("beta", constraints.real, log_earn, 4)
    sigma = _flat("sigma", constraints.positive, log_earn)
    _regression("log_earn", log_earn, _intercept_and_slopes(beta, z_height, male, inter), sigma)


def kidscore_momhsiq(kid_score: torch.Tensor, mom_hs: torch.Tensor, mom_iq: torch.Tensor):
    """kidscore_momhsiq.stan: flat beta [3], sigma ~ Cauchy(0, 2.5) on > 0, kid_score ~ N(beta . (1, mom_hs,
    mom_iq), sigma^2)."""
    beta = _flat("beta", constraints.real, kid_score, 3)
    sigma = pyro.sample("sigma", dist.HalfCauchy(kid_score.new_tensor(2.5)))
    _regression("kid_score", kid_score, _intercept_and_slopes(beta, mom_hs, mom_iq), sigma)


def kidscore_mom_work(kid_score: torch.Tensor, work2: torch.Tensor, work3: torch.Tensor, work4: torch.Tensor):
    """kidscore_mom_work.stan: flat beta [4] and sigma > 0, kid_score ~ N(beta . (1, work2, work3, work4),
    sigma^2) with the indicators of mom_work == 2, 3, 4 (`prepare`)."""
    beta = _flat("beta", constraints.real, kid_score, 4)
    sigma = _flat("sigma", constraints.positive, kid_score)
    _regression("kid_score", kid_score, _intercept_and_slopes(beta, work2, work3, work4), sigma)


def kilpisjarvi(x: torch.Tensor, y: torch.Tensor, pmualpha: torch.Tensor, psalpha: torch.Tensor,
                pmubeta: torch.Tensor, psbeta: torch.Tensor):
    """kilpisjarvi.stan: alpha ~ N(pmualpha, psalpha^2), beta ~ N(pmubeta, psbeta^2), flat sigma > 0,
    y ~ N(alpha + beta x, sigma^2)."""
    alpha = pyro.sample("alpha", dist.Normal(pmualpha.to(y.dtype), psalpha))
    beta = pyro.sample("beta", dist.Normal(pmubeta.to(y.dtype), psbeta))
    sigma = _flat("sigma", constraints.positive, y)
    _regression("y", y, alpha + beta * x, sigma)


def logmesquite_logvas(log_weight: torch.Tensor, log_canopy_volume: torch.Tensor, log_canopy_area: torch.Tensor,
                       log_canopy_shape: torch.Tensor, log_total_height: torch.Tensor, log_density: torch.Tensor,
                       group: torch.Tensor):
    """logmesquite_logvas.stan: flat beta [7] and sigma > 0, log_weight ~ N(beta . (1, log_canopy_volume,
    log_canopy_area, log_canopy_shape, log_total_height, log_density, group), sigma^2)."""
    beta = _flat("beta", constraints.real, log_weight, 7)
    sigma = _flat("sigma", constraints.positive, log_weight)
    mean = _intercept_and_slopes(beta, log_canopy_volume, log_canopy_area, log_canopy_shape, log_total_height,
                                 log_density, group)
    _regression("log_weight", log_weight, mean, sigma)


def nes(partyid7: torch.Tensor, real_ideo: torch.Tensor, race_adj: torch.Tensor, age30_44: torch.Tensor,
        age45_64: torch.Tensor, age65up: torch.Tensor, educ1: torch.Tensor, gender: torch.Tensor,
        income: torch.Tensor):
    """nes.stan: flat beta [9] and sigma > 0, partyid7 ~ N(beta . (1, real_ideo, race_adj, age30_44, age45_64,
    age65up, educ1, gender, income), sigma^2) with age indicators from age_discrete (`prepare`)."""
    beta = _flat("beta", constraints.real, partyid7, 9)
    sigma = _flat("sigma", constraints.positive, partyid7)
    mean = _intercept_and_slopes(beta, real_ideo, race_adj, age30_44, age45_64, age65up, educ1, gender, income)
    _regression("partyid7", partyid7, mean, sigma)


# -- mixture, Gaussian process ------------------------------------------------------------------------
def low_dim_gauss_mix(y: torch.Tensor):
    """low_dim_gauss_mix.stan: ordered mu [2] ~ N(0, 2^2), sigma [2] > 0 ~ N(0, 2^2), theta ~ Beta(5, 5),
    y_n ~ theta N(mu[1], sigma[1]^2) + (1 - theta) N(mu[2], sigma[2]^2)."""
    mu = _flat("mu", constraints.ordered_vector, y, 2)
    pyro.factor("mu_prior", dist.Normal(y.new_zeros(()), 2.0).log_prob(mu).sum(-1))
    sigma = pyro.sample("sigma", dist.HalfNormal(y.new_full((2,), 2.0)).to_event(1))
    theta = pyro.sample("theta", dist.Beta(y.new_tensor(5.0), 5.0))
    mix = dist.Categorical(probs=torch.stack([theta, 1 - theta], -1))
    with pyro.plate("obs", y.shape[-1], dim=-1):
        pyro.sample("y", dist.MixtureSameFamily(mix, dist.Normal(mu, sigma)), obs=y)


def gp_pois_regr(x: torch.Tensor, k: torch.Tensor):
    """gp_pois_regr.stan: rho ~ Gamma(25, 4), alpha > 0 ~ N(0, 2^2), f_tilde ~ N(0, 1), f = L f_tilde with L
    the Cholesky factor of the squared-exponential kernel alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 I,
    k ~ Poisson(exp(f)); f is a deterministic site."""
    rho = pyro.sample("rho", dist.Gamma(x.new_tensor(25.0), 4.0))
    alpha = pyro.sample("alpha", dist.HalfNormal(x.new_tensor(2.0)))
    n = x.shape[-1]
    with pyro.plate("obs", n, dim=-1):
        f_tilde = pyro.sample("f_tilde", dist.Normal(x.new_zeros(()), 1.0))
        sq_dist = (x.unsqueeze(-1) - x.unsqueeze(-2)) ** 2
        # alpha, rho: [] alone or [C, 1] under the chain plate; [..., None] lines them up with [n, n]
        cov = alpha[..., None] ** 2 * torch.exp(-0.5 * sq_dist / rho[..., None] ** 2)
        cov = cov + 1e-10 * torch.eye(n, dtype=x.dtype)
        # where cov is not numerically positive definite Stan's cholesky_decompose rejects the proposal: NaN here
        chol, info = torch.linalg.cholesky_ex(cov)
        chol = torch.where((info == 0)[..., None, None], chol, torch.full_like(chol, float("nan")))
        f = pyro.deterministic("f", (chol @ f_tilde.unsqueeze(-1)).squeeze(-1), event_dim=0)
        pyro.sample("k", dist.Poisson(f.exp()), obs=k)


# -- time series --------------------------------------------------------------------------------------
def _first_and_lag(y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The indicator of t = 1 and y_{t-1} (0 at t = 1)."""
    first = torch.zeros_like(y)
    first[..., 0] = 1.0
    return first, F.pad(y[..., :-1], (1, 0))


def arma11(y: torch.Tensor):
    """arma11.stan: mu ~ N(0, 10^2), phi, theta ~ N(0, 2^2), sigma ~ Cauchy(0, 2.5) on > 0; with
    nu_1 = mu + phi mu, nu_t = mu + phi y_{t-1} + theta err_{t-1} and err_t = y_t - nu_t, err ~ N(0, sigma^2),
    written as y_t ~ N(nu_t, sigma^2)."""
    mu = pyro.sample("mu", dist.Normal(y.new_zeros(()), 10.0))
    phi = pyro.sample("phi", dist.Normal(y.new_zeros(()), 2.0))
    theta = pyro.sample("theta", dist.Normal(y.new_zeros(()), 2.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(y.new_tensor(2.5)))
    first, lag = _first_and_lag(y)
    # err_t = (y_t - mu - phi y_{t-1}) - theta err_{t-1}, with mu in place of y_0 and err_0 = 0
    err = linear_recurrence(-theta, y - mu - phi * (lag + first * mu))
    with pyro.plate("time", y.shape[-1], dim=-1):
        pyro.sample("y", dist.Normal(y - err, sigma), obs=y)


def garch11(y: torch.Tensor, sigma1: torch.Tensor):
    """garch11.stan: flat mu, alpha0 > 0, alpha1 in (0, 1), beta1 in (0, 1 - alpha1); sigma_1 = sigma1,
    sigma_t^2 = alpha0 + alpha1 (y_{t-1} - mu)^2 + beta1 sigma_{t-1}^2, y_t ~ N(mu, sigma_t^2).
    beta1 = (1 - alpha1) beta1_unit, with the Jacobian log(1 - alpha1) (see the module docstring)."""
    mu = _flat("mu", constraints.real, y)
    alpha0 = _flat("alpha0", constraints.positive, y)
    alpha1 = _flat("alpha1", constraints.unit_interval, y)
    beta1_unit = _flat("beta1_unit", constraints.unit_interval, y)
    beta1 = pyro.deterministic("beta1", (1 - alpha1) * beta1_unit, event_dim=0)
    pyro.factor("beta1_jacobian", torch.log1p(-alpha1))
    first, lag = _first_and_lag(y)
    shock = torch.where(first > 0, sigma1.to(y.dtype) ** 2, alpha0 + alpha1 * (lag - mu) ** 2)
    var = linear_recurrence(beta1, shock)
    with pyro.plate("time", y.shape[-1], dim=-1):
        pyro.sample("y", dist.Normal(mu, var.sqrt()), obs=y)


def _transition(theta1: torch.Tensor, theta2: torch.Tensor) -> torch.Tensor:
    """Stan's `array[K] simplex[K] theta` with theta[1] = theta1, theta[2] = theta2, as a deterministic site."""
    return pyro.deterministic("theta", torch.stack([theta1, theta2], -2), event_dim=2)


def hmm_example(y: torch.Tensor):
    """hmm_example.stan: flat simplexes theta1, theta2 (rows of the transition matrix), positive ordered mu with
    mu[1] ~ N(3, 1), mu[2] ~ N(10, 1), y_t | z_t = k ~ N(mu[k], 1), z marginalized by the forward algorithm."""
    theta1 = _flat("theta1", constraints.simplex, y, 2)
    theta2 = _flat("theta2", constraints.simplex, y, 2)
    mu = _flat("mu", constraints.positive_ordered_vector, y, 2)
    theta = _transition(theta1, theta2)
    pyro.factor("mu_prior", dist.Normal(y.new_tensor([3.0, 10.0]), 1.0).log_prob(mu).sum(-1))
    log_emit = dist.Normal(mu.unsqueeze(-2), 1.0).log_prob(y.unsqueeze(-1))
    pyro.factor("log_lik", hmm_log_marginal(theta.log(), log_emit))


def hmm_drive_0(u: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor):
    """hmm_drive_0.stan: theta_k ~ Dirichlet(alpha[k, :]) (rows of the transition matrix), positive ordered phi
    and lambda with phi[1], lambda[1] ~ N(0, 1) and phi[2], lambda[2] ~ N(3, 1); u_t | z_t = k ~ Exponential(phi[k])
    and v_t | z_t = k ~ Exponential(lambda[k]), z marginalized by the forward algorithm."""
    alpha = alpha.to(u.dtype)
    theta1 = pyro.sample("theta1", dist.Dirichlet(alpha[0]))
    theta2 = pyro.sample("theta2", dist.Dirichlet(alpha[1]))
    phi = _flat("phi", constraints.positive_ordered_vector, u, 2)
    lam = _flat("lambda", constraints.positive_ordered_vector, u, 2)
    theta = _transition(theta1, theta2)
    prior = dist.Normal(u.new_tensor([0.0, 3.0]), 1.0)
    pyro.factor("phi_prior", prior.log_prob(phi).sum(-1))
    pyro.factor("lambda_prior", prior.log_prob(lam).sum(-1))
    log_emit = (dist.Exponential(phi.unsqueeze(-2)).log_prob(u.unsqueeze(-1))
                + dist.Exponential(lam.unsqueeze(-2)).log_prob(v.unsqueeze(-1)))
    pyro.factor("log_lik", hmm_log_marginal(theta.log(), log_emit))


# -- ordinary differential equations ------------------------------------------------------------------
def _ode_grid(t0: float, times, step: float, refine: bool = False, smallest: float = 1e-7):
    """A fixed time grid for `_rk4` from t0 through the increasing output `times` (> t0): each gap between
    consecutive output times split into equal steps of at most `step`. With `refine`, the first step is also
    split geometrically, at t0 + s 2^-k (s that step, k = 1, 2, ... while s 2^-k > smallest), for a solution
    that changes on a much shorter time scale just after t0. Returns the points and the index of each output
    time among them."""
    times = torch.as_tensor(times, dtype=torch.float64).cpu().numpy()
    points = [float(t0)]
    for t in times.tolist():
        a = points[-1]
        n = max(1, math.ceil((t - a) / step - 1e-9))
        points += [a + (t - a) * i / n for i in range(1, n)] + [t]
    points = np.asarray(points)
    if refine:
        s = points[1] - points[0]
        points = np.union1d(points, points[0] + s * 0.5 ** np.arange(1, math.ceil(math.log2(s / smallest))))
    return points, np.searchsorted(points, times)


def _rk4(f: Callable, y0: torch.Tensor, params, points: np.ndarray, out: np.ndarray, rtol: float, atol: float,
         forcing: Optional[Callable] = None):
    """The classical fourth-order Runge-Kutta method (Hairer, Norsett & Wanner, Solving ODEs I, II.1) for
    dy/dt = f(t, y, *params) from y0 [..., d] at points[0] over the fixed grid `points`. With `forcing`, f gets
    forcing(T, *params)[..., k, None] in place of the stage time T[k], computed for all stages at once.

    Returns y(points[out]) [..., len(out), d] and, per batch entry, the largest ratio over steps and components
    of the local error estimate h/6 |k4 - f(t + h, y_new)| to atol + rtol |y_new|: the difference from the
    embedded third-order solution with weights (1/6, 1/3, 1/3, 0, 1/6) on (k1, k2, k3, k4, f(t + h, y_new)),
    which meets the four third-order conditions; that last stage is the next step's k1, so the estimate costs
    no evaluation of f."""
    wanted, ys, y = set(out.tolist()), {0: y0}, y0
    worst = torch.zeros_like(y0)
    steps = np.diff(points).tolist()
    stages = np.append(np.stack([points[:-1], points[:-1] + np.diff(points) / 2], 1).ravel(), points[-1])
    g = stages.tolist() if forcing is None else forcing(y0.new_tensor(stages), *params).unsqueeze(-1).unbind(-2)
    k1 = f(g[0], y0, *params)
    for i, h in enumerate(steps):
        k2 = f(g[2 * i + 1], torch.add(y, k1, alpha=h / 2), *params)
        k3 = f(g[2 * i + 1], torch.add(y, k2, alpha=h / 2), *params)
        k4 = f(g[2 * i + 2], torch.add(y, k3, alpha=h), *params)
        y = torch.add(y, torch.add(k1 + k4, k2 + k3, alpha=2.0), alpha=h / 6)
        k1 = f(g[2 * i + 2], y, *params)
        with torch.no_grad():
            worst = torch.maximum(worst, (k4 - k1).abs_().mul_(h / 6).div_(y.abs().mul_(rtol).add_(atol)))
        if i + 1 in wanted:
            ys[i + 1] = y
    return torch.stack([ys[j] for j in out.tolist()], -2), worst.amax(-1)


def _solve_ode(f: Callable, y0: torch.Tensor, params, t0: float, times, step: float, rtol: float, atol: float,
               refine: bool = False, forcing: Optional[Callable] = None, levels: int = 2,
               factor: int = 4) -> torch.Tensor:
    """y(times) [..., T, d] for dy/dt = f(t, y, *params), y(t0) = y0 [..., d], params [..., p_i], by `_rk4` on
    fixed grids (`_ode_grid`). Every batch entry (chain) is solved with steps <= `step`; one whose error
    estimate exceeds its tolerance (atol + rtol |y|) again with steps `factor` times smaller, up to `levels`
    times, and one still above it gets NaN (Stan rejects a solve that overruns its step budget). A chain's steps
    depend on its own parameters only, never on the other chains', so the model vectorizes over chains exactly
    (an adaptive solver's steps, chosen for the whole batch, would not)."""
    batch = y0.shape[:-1]
    y0, *params = (v.expand(*batch, v.shape[-1]).reshape(-1, v.shape[-1]) for v in (y0, *params))
    todo = torch.arange(y0.shape[0], device=y0.device)
    path = None
    for level in range(levels + 1):
        points, out = _ode_grid(t0, times, step / factor ** level, refine)
        sub, ratio = _rk4(f, y0[todo], [p[todo] for p in params], points, out, rtol, atol, forcing)
        path = sub if path is None else path.index_put((todo,), sub)
        todo = todo[~(ratio <= 1)]  # NaN ratios too
        if not len(todo):
            break
    else:
        path = path.index_put((todo,), path.new_full((len(todo), *path.shape[1:]), math.nan))
    return path.reshape(*batch, *path.shape[1:])


def lotka_volterra(ts: torch.Tensor, y_init: torch.Tensor, y: torch.Tensor, step: float = 0.1,
                   rtol: float = 1e-5, atol: float = 1e-3):
    """lotka_volterra.stan: theta = (alpha, beta, gamma, delta) > 0 with alpha, gamma ~ N(1, 0.5^2) and
    beta, delta ~ N(0.05, 0.05^2), z_init ~ LogNormal(log 10, 1), sigma ~ LogNormal(-1, 1); z solves
    du/dt = (alpha - beta v) u, dv/dt = (-gamma + delta u) v from z_init at t = 0 (Stan: rk45 with rtol 1e-5,
    atol 1e-3; here `_solve_ode` with steps <= `step`, refined where the error estimate exceeds those
    tolerances), y_init ~ LogNormal(log z_init, sigma^2), y[t] ~ LogNormal(log z(ts[t]), sigma^2);
    z [N, 2] is a deterministic site."""
    theta = _flat("theta", constraints.positive, y, 4)
    prior = dist.Normal(y.new_tensor([1.0, 0.05, 1.0, 0.05]), y.new_tensor([0.5, 0.05, 0.5, 0.05]))
    pyro.factor("theta_prior", prior.log_prob(theta).sum(-1))
    z_init = pyro.sample("z_init", dist.LogNormal(y.new_full((2,), math.log(10.0)), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.LogNormal(y.new_full((2,), -1.0), 1.0).to_event(1))
    # dz/dt = z (r + k z[::-1]): r = (alpha, -gamma), k = (-beta, delta)
    r, k = theta[..., [0, 2]] * y.new_tensor([1.0, -1.0]), theta[..., [1, 3]] * y.new_tensor([-1.0, 1.0])
    path = _solve_ode(lambda t, z, r, k: z * torch.addcmul(r, k, z.flip(-1)), z_init, (r, k), 0.0, ts, step,
                      rtol, atol)
    z = pyro.deterministic("z", path, event_dim=2)
    pyro.sample("y_init", dist.LogNormal(z_init.log(), sigma).to_event(1), obs=y_init)
    with pyro.validation_enabled(False):  # a failed or negative solution: a NaN density, rejected (as in Stan)
        pyro.sample("y", dist.LogNormal(z.log(), sigma.unsqueeze(-2)).to_event(2), obs=y)


def _dose(t: torch.Tensor, k_a, K_m, rate, dose0):
    return dose0 * torch.exp(-k_a * t)


def _dc_dt(dose: torch.Tensor, c, k_a, K_m, rate, dose0):
    return torch.addcmul(dose, rate, c / (K_m + c))


def one_comp_mm_elim_abs(t0: torch.Tensor, D: torch.Tensor, V: torch.Tensor, times: torch.Tensor,
                         C_hat: torch.Tensor, step: float = 0.1, rtol: float = 1e-6, atol: float = 1e-6):
    """one_comp_mm_elim_abs.stan: k_a, K_m, V_m, sigma > 0 each ~ Cauchy(0, 1); C solves
    dC/dt = [t > 0] exp(-k_a t) D k_a / V - (V_m / V) C / (K_m + C) from C = 0 at t0 (Stan: BDF with its
    default tolerances 1e-6; here `_solve_ode` with steps <= `step`, refined where the error estimate exceeds
    rtol, atol), C_hat[n] ~ LogNormal(log C(times[n]), sigma^2); C [N_t, 1] is a deterministic site.

    C stays 0 until the dose starts at t = 0, so the solve starts at max(t0, 0), where the dose, and thus C, is
    smooth (`[t > 0]` is taken as its limit from the right there). The elimination term turns on over C ~ K_m,
    which a small K_m puts within ~K_m V / (D k_a) of the start: the first step is split geometrically there
    (without it, the RK4 error at K_m ~ 1e-4, which the posterior reaches, is O(step), ~1e-3 relative).
    Where C << K_m the elimination is stiff, decaying at up to V_m / (V K_m), and RK4 is stable for step x rate
    < 2.78: the default 0.1 covers Pyro's initial box (K_m, V_m in [e^-2, e^2], rate <= 27.3 with this data's
    V = 2)."""
    prior = dist.HalfCauchy(C_hat.new_tensor(1.0))
    k_a, K_m, V_m, sigma = (pyro.sample(n, prior) for n in ("k_a", "K_m", "V_m", "sigma"))
    params = tuple(v.unsqueeze(-1) for v in (k_a, K_m, -V_m / V, D * k_a / V))
    path = _solve_ode(_dc_dt, torch.zeros_like(params[0]), params, max(float(t0), 0.0), times, step, rtol, atol,
                      refine=True, forcing=_dose)
    conc = pyro.deterministic("C", path, event_dim=2)
    with pyro.validation_enabled(False):  # as in lotka_volterra
        pyro.sample("C_hat", dist.LogNormal(conc[..., 0].log(), sigma.unsqueeze(-1)).to_event(1), obs=C_hat)


# -- data: posteriordb's data dicts to the models' keyword tensors ------------------------------------
def _tensors(data: Mapping, *names: str) -> Dict[str, torch.Tensor]:
    return {n: torch.as_tensor(np.asarray(data[n], dtype=np.float64), dtype=DTYPE) for n in names}


def _indicators(codes, levels: Dict[str, int]) -> Dict[str, torch.Tensor]:
    codes = np.asarray(codes)
    return {n: torch.as_tensor((codes == v).astype(np.float64), dtype=DTYPE) for n, v in levels.items()}


def _prepare_diamonds(data: Mapping) -> Dict[str, torch.Tensor]:
    x = np.asarray(data["X"], dtype=np.float64)[:, 1:]  # transformed data: drop the intercept column, center
    return {"Y": _tensors(data, "Y")["Y"], "Xc": torch.as_tensor(x - x.mean(0), dtype=DTYPE),
            "prior_only": bool(data["prior_only"])}


def _prepare_logearn(data: Mapping) -> Dict[str, torch.Tensor]:
    d = _tensors(data, "earn", "height", "male")
    z = (d["height"] - d["height"].mean()) / d["height"].std()  # Stan's sd: the N - 1 denominator
    return {"log_earn": d["earn"].log(), "z_height": z, "male": d["male"], "inter": z * d["male"]}


def _prepare_mesquite(data: Mapping) -> Dict[str, torch.Tensor]:
    d = _tensors(data, "weight", "diam1", "diam2", "canopy_height", "total_height", "density", "group")
    return {"log_weight": d["weight"].log(),
            "log_canopy_volume": (d["diam1"] * d["diam2"] * d["canopy_height"]).log(),
            "log_canopy_area": (d["diam1"] * d["diam2"]).log(), "log_canopy_shape": (d["diam1"] / d["diam2"]).log(),
            "log_total_height": d["total_height"].log(), "log_density": d["density"].log(), "group": d["group"]}


def _prepare_nes(data: Mapping) -> Dict[str, torch.Tensor]:
    out = _tensors(data, "partyid7", "real_ideo", "race_adj", "educ1", "gender", "income")
    out.update(_indicators(data["age_discrete"], {"age30_44": 2, "age45_64": 3, "age65up": 4}))
    return out


def _prepare_mom_work(data: Mapping) -> Dict[str, torch.Tensor]:
    return {**_tensors(data, "kid_score"), **_indicators(data["mom_work"], {"work2": 2, "work3": 3, "work4": 4})}


def _taking(*names: str) -> Callable[[Mapping], Dict[str, torch.Tensor]]:
    return lambda data: _tensors(data, *names)


# -- the registry ---------------------------------------------------------------------------------------
def _column_major(shape: Tuple[int, ...]):
    return [idx[::-1] for idx in np.ndindex(*shape[::-1])]


def stan_names(name: str, shape: Tuple[int, ...]) -> Tuple[str, ...]:
    """Stan's output names of a parameter of `shape`: `name` for a scalar, else `name[i,j]` (1-based) with the
    first index running fastest (column-major), as in Stan's CSV and posteriordb's reference draws."""
    if not shape:
        return (name,)
    return tuple(f"{name}[{','.join(str(i + 1) for i in idx)}]" for idx in _column_major(shape))


@dataclass(frozen=True)
class Port:
    """A Stan program's Pyro port.

    Attributes
    ----------
    model
        The Pyro model; it takes `prepare`'s keyword tensors.
    prepare
        Posteriordb's data dict -> the model's keyword tensors (float64), with Stan's `transformed data`.
    sites
        The Stan names of the parameters posteriordb's reference draws hold (latent or deterministic sites).
    extras
        Optional packages the model needs (pip extras of entropy-mcmc).
    """

    model: Callable
    prepare: Callable[[Mapping], Dict[str, torch.Tensor]]
    sites: Tuple[str, ...]
    extras: Tuple[str, ...] = ()

    def flatten_draws(self, samples: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Constrained draws `{site: [chains, draws, *shape]}` -> `{stan_name: [chains, draws]}` for `sites`."""
        missing = [s for s in self.sites if s not in samples]
        if missing:
            raise ValueError(f"samples lack the site(s) {missing}; this port compares {list(self.sites)} "
                             "(deterministic sites come from `reference.add_deterministic`)")
        out = {}
        for site in self.sites:
            v = torch.as_tensor(samples[site])
            shape = tuple(v.shape[2:])
            out.update(zip(stan_names(site, shape), (v[(..., *idx)] for idx in _column_major(shape))))
        return out


PORTS: Dict[str, Port] = {
    "arma-arma11": Port(arma11, _taking("y"), ("mu", "phi", "theta", "sigma")),
    "bball_drive_event_0-hmm_drive_0": Port(hmm_drive_0, _taking("u", "v", "alpha"),
                                            ("theta1", "theta2", "phi", "lambda")),
    "diamonds-diamonds": Port(diamonds, _prepare_diamonds, ("b", "Intercept", "sigma")),
    "earnings-earn_height": Port(earn_height, _taking("earn", "height"), ("beta", "sigma")),
    "earnings-logearn_interaction_z": Port(logearn_interaction_z, _prepare_logearn, ("beta", "sigma")),
    "garch-garch11": Port(garch11, _taking("y", "sigma1"), ("mu", "alpha0", "alpha1", "beta1")),
    "gp_pois_regr-gp_pois_regr": Port(gp_pois_regr, _taking("x", "k"), ("rho", "alpha", "f")),
    "hmm_example-hmm_example": Port(hmm_example, _taking("y"), ("theta1", "theta2", "mu")),
    "hudson_lynx_hare-lotka_volterra": Port(lotka_volterra, _taking("ts", "y_init", "y"),
                                            ("theta", "z_init", "sigma")),
    "kidiq-kidscore_momhsiq": Port(kidscore_momhsiq, _taking("kid_score", "mom_hs", "mom_iq"), ("beta", "sigma")),
    "kidiq_with_mom_work-kidscore_mom_work": Port(kidscore_mom_work, _prepare_mom_work, ("beta", "sigma")),
    "kilpisjarvi_mod-kilpisjarvi": Port(kilpisjarvi, _taking("x", "y", "pmualpha", "psalpha", "pmubeta", "psbeta"),
                                        ("alpha", "beta", "sigma")),
    "low_dim_gauss_mix-low_dim_gauss_mix": Port(low_dim_gauss_mix, _taking("y"), ("mu", "sigma", "theta")),
    "mesquite-logmesquite_logvas": Port(logmesquite_logvas, _prepare_mesquite, ("beta", "sigma")),
    "nes2000-nes": Port(nes, _prepare_nes, ("beta", "sigma")),
    "one_comp_mm_elim_abs-one_comp_mm_elim_abs": Port(one_comp_mm_elim_abs,
                                                      _taking("t0", "D", "V", "times", "C_hat"),
                                                      ("k_a", "K_m", "V_m", "sigma")),
    "sblrc-blr": Port(blr, _taking("X", "y"), ("beta", "sigma")),
}


def get_port(name: str) -> Port:
    """The port of posteriordb posterior `name` (e.g. "arma-arma11"); a ValueError lists the known names."""
    if name not in PORTS:
        raise ValueError(f"no Pyro port of posterior {name!r}; ported: {sorted(PORTS)}")
    return PORTS[name]

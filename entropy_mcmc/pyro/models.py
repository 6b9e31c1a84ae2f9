"""Pyro models used by the tests, benchmarks and notebook.

`logistic_regression_model` is the Bayesian logistic regression of
`entropy_mcmc.targets.LogisticRegression` written in Pyro: w ~ N(0, prior_scale^2 I),
y_n ~ Bernoulli(sigmoid(x_n . w)). Its potential equals the native target's energy
up to the constant (d/2) log(2 pi prior_scale^2).

`eight_schools_model` is the non-centered eight-schools model (Rubin 1981;
Gelman et al., BDA3 section 5.5): mu ~ N(0, 5), tau ~ HalfCauchy(5),
theta_j = mu + tau eta_j with eta_j ~ N(0, 1), y_j ~ N(theta_j, sigma_j). Its
positive scale tau is sampled as log tau, so the transform's Jacobian matters.

`hierarchical_normal_model` is a smaller, better-conditioned hierarchical model with a
HalfNormal group scale and several observations per group, indexed by group:
mu ~ N(0, 2^2), tau ~ HalfNormal(1), eta_j ~ N(0, 1), y_i ~ N(mu + tau eta_{g_i}, 1).
"""
from __future__ import annotations

from typing import Optional, Tuple

import pyro
import pyro.distributions as dist
import torch

from ..datasets import DATASETS, load_dataset
from ..targets.logistic_regression import attach_reference
from .target import PyroTarget

__all__ = ["logistic_regression_model", "linear_predictor", "load_blr_data", "blr_target", "eight_schools_model",
           "EIGHT_SCHOOLS_Y", "EIGHT_SCHOOLS_SIGMA", "hierarchical_normal_model", "hierarchical_normal_data"]


def logistic_regression_model(x: torch.Tensor, y: Optional[torch.Tensor] = None, prior_scale: float = 1.0):
    """Bayesian logistic regression over a design matrix `x` [n, d] and labels `y` [n] in {0, 1}."""
    d = x.shape[-1]
    w = pyro.sample("w", dist.Normal(torch.zeros(d, dtype=x.dtype, device=x.device), prior_scale).to_event(1))
    logits = linear_predictor(x, w)
    with pyro.plate("data", x.shape[-2], dim=-1):
        return pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def linear_predictor(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w for weights w of shape [d], [*outer, 1, d] or [*outer, d]; returns [*outer, n].

    Under outer plates (our chain plate, SVI's vectorized particles) Pyro gives a global w the
    batch shape [*outer, 1], the 1 sitting at the data plate's dim -1, so w is [*outer, 1, d];
    `Predictive` conditioning on posterior samples (ArviZ's log-likelihood) passes [*outer, d].
    Either way the logits must be [*outer, n] (a plain `w @ x.T` would give [*outer, 1, n] in
    the first case).
    """
    outer = w.shape[:-1]
    if len(outer) and outer[-1] == 1:
        outer = outer[:-1]
    return (w.reshape(-1, w.shape[-1]) @ x.transpose(-1, -2)).reshape(outer + (x.shape[-2],))


def load_blr_data(name: str, dtype: torch.dtype = torch.float64, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The design matrix (intercept, standardized features) and labels of a shipped dataset as tensors."""
    if name not in DATASETS:
        raise ValueError(f"unknown logistic regression dataset {name!r}; expected one of {DATASETS}")
    x, y = load_dataset(name)
    return (torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(y, dtype=dtype, device=device))


def blr_target(name: str, dtype: torch.dtype = torch.float64, **target_options) -> PyroTarget:
    """`logistic_regression_model` on a shipped dataset as a chain-vectorized `PyroTarget`,
    with the reference posterior moments attached as `mean`/`std` when they are shipped."""
    target = PyroTarget(logistic_regression_model, load_blr_data(name, dtype), name=f"pyro_{name}",
                        **target_options)
    return attach_reference(target, name)


EIGHT_SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
EIGHT_SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)


def eight_schools_model(sigma: torch.Tensor, y: Optional[torch.Tensor] = None):
    """Non-centered eight schools; `sigma` [J] are the known standard errors, `y` [J] the observed effects;
    theta = mu + tau eta is recorded as a `pyro.deterministic` site."""
    mu = pyro.sample("mu", dist.Normal(torch.zeros((), dtype=sigma.dtype), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(torch.full((), 5.0, dtype=sigma.dtype)))
    with pyro.plate("schools", sigma.shape[-1], dim=-1):
        eta = pyro.sample("eta", dist.Normal(torch.zeros((), dtype=sigma.dtype), 1.0))
        theta = pyro.deterministic("theta", mu + tau * eta)
        return pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def hierarchical_normal_model(group: torch.Tensor, num_groups: int, y: Optional[torch.Tensor] = None):
    """Non-centered hierarchical normal; `group` [n] holds each observation's group index in [0, num_groups)."""
    dtype = y.dtype if y is not None else torch.get_default_dtype()
    mu = pyro.sample("mu", dist.Normal(torch.zeros((), dtype=dtype), 2.0))
    tau = pyro.sample("tau", dist.HalfNormal(torch.ones((), dtype=dtype)))
    with pyro.plate("groups", num_groups, dim=-1):
        eta = pyro.sample("eta", dist.Normal(torch.zeros((), dtype=dtype), 1.0))
    theta = mu + tau * eta  # [num_groups], or [chains, num_groups] under a chain plate
    with pyro.plate("obs", group.shape[0], dim=-1):
        return pyro.sample("y", dist.Normal(theta[..., group], 1.0), obs=y)


def hierarchical_normal_data(num_groups: int = 4, per_group: int = 3, seed: int = 3,
                             dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, int, torch.Tensor]:
    """Model arguments `(group, num_groups, y)` simulated from group means 1 + 0.8 N(0, 1) with unit noise."""
    gen = torch.Generator().manual_seed(seed)
    group = torch.arange(num_groups).repeat_interleave(per_group)
    theta = 1.0 + 0.8 * torch.randn(num_groups, generator=gen, dtype=dtype)
    y = theta[group] + torch.randn(group.shape[0], generator=gen, dtype=dtype)
    return group, num_groups, y

"""The ESS estimator of the neural-sampler literature (A-NICE-MC, L2HMC, thesis appendix C.2).

"For ESS evaluation we sample for 2000 steps and calculate the correlation function for
samples from the later 1000 steps." Following A-NICE-MC's evaluation code, with the
known (or reference) mean mu and variance var of each dimension,

    rho_j(s) = mean over chains of [ mean_t (x_t - mu_j)(x_{t+s} - mu_j) ] / var_j,
    ESS_j = T / (1 + 2 sum_{s >= 1} rho_j(s) (1 - s/T) [rho_j(s) > 0.05]),

where the sum stops at the first lag at which no dimension is above 0.05. The
autocorrelation is computed within each chain (never across chains) and averaged over
chains, so ESS_j is per chain, out of T steps; ESS per MH step is min_j ESS_j / T and the
BLR figure "ESS per 5k" is 5000 times that. Unlike ArviZ's rank-normalized ESS it uses
the true moments, so a chain that has not found the whole target can still look good;
report both.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from .ess import as_draws_array
from .plots import autocorrelation


def autocorr_ess(draws, mean=None, var=None, last: Optional[int] = 1000, threshold: float = 0.05) -> np.ndarray:
    """ESS per dimension, out of `last` steps per chain (A-NICE-MC estimator; see the module doc).

    `mean` and `var` (per dimension) default to the pooled moments of the draws used.
    """
    x = as_draws_array(draws)
    if last is not None:
        if x.shape[1] < last:
            raise ValueError(f"need at least {last} steps per chain, got {x.shape[1]}")
        x = x[:, -last:]
    mean = x.mean((0, 1)) if mean is None else mean
    var = x.var((0, 1)) if var is None else var
    rho = autocorrelation(x, mean=mean, var=var, unbiased=True).mean(0)
    t = rho.shape[0]
    above = rho[1:] > threshold
    none_above = ~above.any(1)
    stop = int(np.argmax(none_above)) if none_above.any() else t - 1
    lags = np.arange(1, t)
    terms = np.where(above, 2.0 * rho[1:] * (1.0 - lags / t)[:, None], 0.0)[:stop]
    return t / (1.0 + terms.sum(0))


def thesis_ess(draws, mean=None, var=None, last: int = 1000, num_grad_evals_per_step: Optional[float] = None,
               seconds_per_step: Optional[float] = None) -> Dict[str, float]:
    """Min-over-dimensions ESS of the last `last` steps and the thesis' rates.

    Returns min_ess (per chain, out of `last`), ess_per_mh, ess_per_5k (5000 x ess_per_mh),
    and, when given the gradient evaluations per MH step, ess_per_grad; when given the
    seconds one MH step of all chains takes, ess_per_s (ESS summed over chains per second).
    """
    x = as_draws_array(draws)
    e = autocorr_ess(x, mean, var, last)
    m = float(np.min(e))
    out = {"min_ess": m, "median_ess": float(np.median(e)), "ess_per_mh": m / last, "ess_per_5k": 5000.0 * m / last}
    if num_grad_evals_per_step:
        out["ess_per_grad"] = m / last / num_grad_evals_per_step
    if seconds_per_step:
        out["ess_per_s"] = m * x.shape[0] / (last * seconds_per_step)
    return out


__all__ = ["autocorr_ess", "thesis_ess"]

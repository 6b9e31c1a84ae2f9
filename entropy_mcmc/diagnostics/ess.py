"""Effective sample size and friends through ArviZ, and the efficiency figures the benchmarks report.

All array inputs are draws `[chains, draws, *event]` (torch or numpy).
"""
from __future__ import annotations

import sys
from typing import Dict

import numpy as np


def as_draws_array(draws) -> np.ndarray:
    """Draws (a `SampleResult`, torch or numpy `[chains, draws, *event]`) as float64 `[chains, draws, dims]`."""
    if hasattr(draws, "draws"):
        draws = draws.draws
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(draws, torch.Tensor):
        draws = draws.detach().cpu().double().numpy()
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"expected draws [chains, draws, *event], got shape {x.shape}")
    if x.ndim == 2:
        x = x[..., None]
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_dim(fn, draws, **kwargs) -> np.ndarray:
    import arviz as az

    x = as_draws_array(draws)
    ds = az.convert_to_dataset({"x": x})
    return np.asarray(fn(ds, **kwargs)["x"].values, dtype=np.float64).reshape(-1)


def ess(draws, method: str = "bulk") -> np.ndarray:
    """ESS per dimension (ArviZ; `method` is 'bulk', 'tail', 'mean', ...), flattened over the event."""
    import arviz as az

    return _per_dim(az.ess, draws, method=method)


def rhat(draws) -> np.ndarray:
    """Rank-normalized split R-hat per dimension (ArviZ)."""
    import arviz as az

    return _per_dim(az.rhat, draws)


def mcse(draws, method: str = "mean") -> np.ndarray:
    """Monte Carlo standard error per dimension (ArviZ)."""
    import arviz as az

    return _per_dim(az.mcse, draws, method=method)


def expected_squared_jump(draws) -> float:
    """Mean of ``|x_{t+1} - x_t|^2`` over chains and steps."""
    x = as_draws_array(draws)
    return float(np.mean(np.sum(np.diff(x, axis=1) ** 2, axis=-1)))


def efficiency(draws, *, steps: int, grad_evals: int, warmup_time: float, sampling_time: float,
               extra_time: float = 0.0, **extra) -> Dict[str, float]:
    """Min-over-dimensions ESS (bulk and tail) of `draws` and its rates; the one place they are computed.

    `steps` counts every MH step taken while sampling (chains x steps), `grad_evals` every gradient
    evaluation while sampling; ESS/s divides by `sampling_time` and `ess_per_s_total` by warmup plus
    sampling plus `extra_time` (compilation, for JAX peers). `extra` entries (acceptance, divergences)
    are passed through.
    """
    x = as_draws_array(draws)
    bulk, tail = ess(x, "bulk"), ess(x, "tail")
    min_bulk = float(np.min(bulk))
    return {
        "min_ess_bulk": min_bulk,
        "min_ess_tail": float(np.min(tail)),
        "ess_per_mh": min_bulk / steps,
        "ess_per_grad": min_bulk / grad_evals if grad_evals else float("nan"),
        "ess_per_s": min_bulk / sampling_time,
        "ess_per_s_total": min_bulk / (warmup_time + sampling_time + extra_time),
        "max_rhat": float(np.max(rhat(x))),
        "esjd": expected_squared_jump(x),
        **extra,
    }

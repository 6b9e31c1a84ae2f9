"""The summary `entropy-mcmc sample` prints, lean: ArviZ's numbers without the cost of `az.summary` at 4096+ chains.

`lean_summary` gives, per scalar of each variable, the columns of `az.summary(kind="all")` less the HDI:
mean, sd (both in float64), mcse_mean, mcse_sd, ess_bulk, ess_tail, r_hat. It follows ArviZ's
`_multichain_statistics` step by step with ArviZ's own `_ess`, `_rhat`, `_quantile` and `_split_chains`, but
ranks with one argsort in the draws' own dtype (average ranks of ties, as scipy's `rankdata`, which sorts a
float64 copy stably and was half of `az.summary`'s time at 4096 chains x 300 draws). It reads a variable a
block of scalars at a time, so a lazily opened file is summarized within `max_bytes` of draws.
Imports numpy, scipy, pandas and ArviZ, not torch.
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, Optional

import numpy as np

COLUMNS = ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")
WORK_BYTES = 96  # the most `scalar_stats` holds per chain and draw (measured: 69 for float32, 89 float64)


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the flattened `a` as float64, ties given their average rank (`scipy.stats.rankdata`)."""
    flat = a.ravel()
    order = np.argsort(flat)  # unstable is fine: tied values share their average rank
    s = flat[order]
    new = np.empty(s.size, bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], s.size)
    ranks = np.empty(s.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks.reshape(a.shape)


def _z_scale(a: np.ndarray) -> np.ndarray:
    """ArviZ's `_z_scale`: normal quantiles of the Blom-offset ranks."""
    from arviz.stats.diagnostics import _backtransform_ranks
    from scipy.special import ndtri  # what scipy.stats.norm.ppf computes

    return ndtri(_backtransform_ranks(average_ranks(a)))


def scalar_stats(ary: np.ndarray) -> Dict[str, float]:
    """The `COLUMNS` of one scalar's draws `[chains, draws]`, as `az.summary` computes them."""
    from arviz.stats.diagnostics import _ess, _ess_mean, _not_valid, _quantile, _rhat, _split_chains

    # in float64: az.summary's float32 sums over (chain, draw) lose digits at millions of draws
    out = {"mean": float(ary.mean(dtype=np.float64)),
           "sd": float(ary.std(ddof=1, dtype=np.float64)) if ary.size > 1 else math.nan}
    if _not_valid(ary, shape_kwargs=dict(min_draws=4, min_chains=1)):
        return {**out, **{c: math.nan for c in COLUMNS[2:]}}
    z_split = _z_scale(_split_chains(ary))
    q05, q95 = _quantile(ary, [0.05, 0.95])
    ess_tail = min(_ess(_split_chains(ary <= q05)), _ess(_split_chains(ary <= q95)))
    if _not_valid(ary, shape_kwargs=dict(min_draws=4, min_chains=2)):
        r_hat = math.nan
    else:
        folded = np.abs(ary - np.median(ary))
        r_hat = max(_rhat(z_split), _rhat(_z_scale(_split_chains(folded))))
    sims_c2 = (ary - ary.mean()) ** 2
    total = sims_c2.sum()
    evar = total / sims_c2.size
    varvar = ((sims_c2 ** 2).mean() - evar ** 2) / _ess_mean(sims_c2)
    return {**out, "mcse_mean": float(np.sqrt(total / (sims_c2.size - 1) / _ess_mean(ary))),
            "mcse_sd": float(np.sqrt(varvar / evar / 4)), "ess_bulk": float(_ess(z_split)),
            "ess_tail": float(ess_tail), "r_hat": float(r_hat)}


def lean_summary(posterior, var_names=None, max_bytes: Optional[float] = None):
    """A pandas DataFrame indexed as `az.summary`'s (`x[0]`, `x[0, 1]`) with the `COLUMNS`.

    `posterior`: an xarray Dataset with dims (chain, draw, ...) per variable (in memory or opened lazily
    from a file), or an ArviZ InferenceData (its posterior). `max_bytes` bounds the memory the summary takes:
    half for the block of scalars read at once, half for one scalar's work (`WORK_BYTES` per chain and draw).
    Where one scalar's work alone would exceed that, it uses every k-th draw, k in `table.attrs["thin"]`.
    """
    import pandas as pd

    posterior = getattr(posterior, "posterior", posterior)
    max_bytes = None if max_bytes is None or math.isinf(max_bytes) else max_bytes
    names = list(posterior.data_vars) if var_names is None else list(var_names)
    rows, index, thinned = [], [], 1
    for name in names:
        var = posterior[name].transpose("chain", "draw", ...)
        thin = 1 if max_bytes is None else max(1, math.ceil(WORK_BYTES * math.prod(var.shape[:2]) / (max_bytes / 2)))
        if thin > 1:
            var, thinned = var.isel(draw=slice(None, None, thin)), max(thinned, thin)
        extra = var.dims[2:]
        coords = [posterior[d].values if d in posterior.coords else range(var.sizes[d]) for d in extra]
        if not extra:
            blocks = [(None, None)]
        else:
            per_row = var.dtype.itemsize * math.prod(var.shape[:2] + var.shape[3:])
            step = var.shape[2] if max_bytes is None else max(1, int(max_bytes / 2 // per_row))
            blocks = [(i, min(i + step, var.shape[2])) for i in range(0, var.shape[2], step)]
        for lo, hi in blocks:
            block = np.asarray(var.values if lo is None else var.isel({extra[0]: slice(lo, hi)}).values)
            inner = [] if lo is None else [coords[0][lo:hi], *coords[1:]]
            for idx, labels in zip(np.ndindex(block.shape[2:]), itertools.product(*inner)):
                rows.append(scalar_stats(np.ascontiguousarray(block[(slice(None), slice(None), *idx)])))
                index.append(f"{name}[{', '.join(str(v) for v in labels)}]" if extra else name)
            del block  # before the next block is read
    table = pd.DataFrame(rows, index=index, columns=list(COLUMNS))
    table.attrs["thin"] = thinned
    return table


__all__ = ["COLUMNS", "WORK_BYTES", "average_ranks", "lean_summary", "scalar_stats"]

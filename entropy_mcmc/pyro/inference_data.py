"""ArviZ output of a `pyro.infer.MCMC` run of `PyroKernel`, with the runner's sample-statistics names."""
from __future__ import annotations

import numpy as np

__all__ = ["from_pyro", "SAMPLE_STAT_NAMES"]

# The per-draw statistics the adapter records, named as `SampleResult.to_arviz()` names them.
SAMPLE_STAT_NAMES = ("acceptance_rate", "is_accepted", "diverging", "energy", "lp", "step_size")


def from_pyro(mcmc, **kwargs):
    """`arviz.from_pyro(mcmc)` plus the per-draw statistics `PyroKernel` records.

    ArviZ's converter reads only Pyro's `divergences` into `sample_stats.diverging`; this adds
    `acceptance_rate`, `is_accepted`, `energy`, `lp` and `step_size` per chain and draw (the
    names `SampleResult.to_arviz()` uses). Other kernels (Pyro's NUTS) pass through unchanged.
    """
    import arviz as az

    idata = az.from_pyro(mcmc, **kwargs)
    per_chain = mcmc.diagnostics().get("sample_stats")
    if not per_chain:
        return idata
    chains = [per_chain[f"chain {i}"] for i in range(mcmc.num_chains)]
    stats = {k: np.stack([np.asarray(c[k]) for c in chains]) for k in chains[0]}
    ds = az.dict_to_dataset(stats, library=None)
    for name in ds.data_vars:
        idata.sample_stats[name] = (("chain", "draw"), ds[name].values)
    return idata

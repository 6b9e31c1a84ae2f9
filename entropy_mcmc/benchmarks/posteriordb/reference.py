"""posteriordb reference draws, and draws compared with them by Monte Carlo standard errors.

`load_posterior(db_path, name)` reads a posterior from a posterior database folder (posteriordb's own
layout: a full clone of stan-dev/posteriordb or a subset) with the `posteriordb` package (0.2.0), which
reads this layout as it is: the data (`posterior(name).data.values()`) and the reference draws
(`posterior(name).reference_draws()`, a list of one dict per chain).

`compare(draws, reference)` tests, per reference key, the mean and the standard deviation:

    |m - m_ref| <= z * sqrt(mcse_mean^2 + mcse_mean_ref^2),   |s - s_ref| <= z * sqrt(mcse_sd^2 + mcse_sd_ref^2)

with the MCSEs of ArviZ (`az.mcse`, methods "mean" and "sd", from each side's chains) and z the two-sided
Bonferroni quantile Phi^-1(1 - fwer / (2 n)) over all n tests of the posterior, so that correct draws fail
on a posterior with probability at most `fwer` (0.01 by default), given valid MCSEs.

An MCSE is valid only for a moment the draws have: the mean's needs a finite variance, the sd's a finite
fourth moment. Where a key's reference draws have a tail too heavy for that (one_comp_mm_elim_abs's K_m and
V_m, with half-Cauchy priors), the sd of 10k draws is noise and no tolerance can judge it. So for each key
the Pareto k-hat of the tail of |x - median(x)| in the reference draws (`az.psislw`'s generalized Pareto fit;
Vehtari et al. 2024, "Pareto smoothed importance sampling", sec. 3: the r-th moment is finite for k < 1/r)
decides: the sd is tested only where k-hat < 0.25 and the mean only where k-hat < 0.5; a key with
k-hat >= 0.25 is tested instead on its 5%, 25%, 50%, 75% and 95% quantiles, each within z combined MCSEs
(`az.mcse(method="quantile")`), which exist whatever the tail.

MCSEs are valid only for chains that mixed: stuck chains have a huge MCSE that would pass any mean, so a run
passes only if also every key's bulk ESS is at least `min_ess` (100) and its rank-normalized R-hat at most
`max_rhat` (1.05: chains that did not mix are far above it; Stan's 1.01 is for long runs, and correct chains of a
short run cross it by chance: 1.012 for 4 x 500 draws of an AR(1) process).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Dict, Mapping

import numpy as np
import torch
from scipy.stats import norm

from ...targets.potential import SequentialFallbackWarning
from .models import Port, get_port

__all__ = ["Posterior", "load_posterior", "add_deterministic", "compare", "tail_khat"]


@dataclass
class Posterior:
    """A posteriordb posterior with its Pyro port.

    Attributes
    ----------
    name
        Posteriordb's posterior name, e.g. "arma-arma11".
    port
        The `Port` (model, data preparation, compared sites).
    kwargs
        The model's keyword arguments (`port.prepare` of posteriordb's data).
    reference
        The reference draws `{stan_name: [chains, draws]}`.
    """

    name: str
    port: Port
    kwargs: Dict[str, torch.Tensor]
    reference: Dict[str, np.ndarray]

    def draws(self, samples: Mapping[str, torch.Tensor]) -> Dict[str, np.ndarray]:
        """Constrained samples of the latent sites `{site: [chains, draws, *shape]}` (`MCMC.get_samples(
        group_by_chain=True)`) -> `{stan_name: [chains, draws]}` with the reference's keys, deterministic
        sites (e.g. gp_pois_regr's f) recomputed by `add_deterministic`."""
        if not all(s in samples for s in self.port.sites):
            samples = add_deterministic(self.port.model, self.kwargs, samples)
        return {k: v.detach().cpu().numpy() for k, v in self.port.flatten_draws(samples).items()}


def load_posterior(db_path, name: str) -> Posterior:
    """The posterior `name` of the posterior database at `db_path`, its prepared data and reference draws.

    Raises:
        ValueError: no database at `db_path`, no posterior `name` in it or no port of it, no reference draws.
        ImportError: the `posteriordb` package is missing (`pip install 'entropy-mcmc[posteriordb]'`).
    """
    if not os.path.isdir(os.path.join(db_path, "posteriors")):
        raise ValueError(f"no posterior database at {str(db_path)!r} (expected a 'posteriors' folder in it)")
    try:
        from posteriordb import PosteriorDatabase
    except ImportError as e:
        raise ImportError("reading posteriordb needs the posteriordb package: "
                          "pip install 'entropy-mcmc[posteriordb]'") from e
    pdb = PosteriorDatabase(str(db_path))
    known = sorted(pdb.posterior_names())
    if name not in known:
        raise ValueError(f"posterior {name!r} is not in the database at {str(db_path)!r}; it has {known}")
    port = get_port(name)
    if pdb.get_posterior_info(name).get("reference_posterior_name") is None:
        raise ValueError(f"posterior {name!r} has no reference draws in the database at {str(db_path)!r}")
    posterior = pdb.posterior(name)
    chains = posterior.reference_draws()
    reference = {k: np.array([c[k] for c in chains], dtype=np.float64) for k in chains[0]}
    return Posterior(name, port, port.prepare(posterior.data.values()), reference)


def add_deterministic(model, model_kwargs: Mapping, samples: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """`samples` `{site: [chains, draws, *shape]}` (constrained latent values, as Pyro's MCMC returns them) with the
    model's `pyro.deterministic` sites added by `PyroTarget.site_draws` (one model run for all draws where the
    model vectorizes)."""
    from ...pyro.target import PyroTarget

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SequentialFallbackWarning)  # slower, same values
        target = PyroTarget(model, (), model_kwargs)
    x = target.flatten({n: target.transforms[n](samples[n]) for n in target.layout.names}, batch_dims=2)
    return {**samples, **target.site_draws(x)[0]}


SD_MAX_KHAT, MEAN_MAX_KHAT = 0.25, 0.5  # moments 4 and 2: what the sd's and the mean's MCSEs need (module docstring)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def tail_khat(draws: np.ndarray) -> float:
    """The Pareto k-hat of the tail of |x - median(x)| over all chains' draws (module docstring)."""
    import arviz as az

    x = np.asarray(draws, dtype=np.float64).ravel()
    w = np.abs(x - np.median(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # psislw's own note on a large k-hat: that is what is measured here
        return float(az.psislw(np.log(w[w > 0]), reff=1.0)[1])


def compare(draws: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], fwer: float = 0.01,
            min_ess: float = 100.0, max_rhat: float = 1.05) -> dict:
    """Per reference key and overall: the mean error in reference sds, the sd ratio, our bulk ESS, and whether
    mean and sd (or, for a heavy-tailed key, its quantiles) agree within `z` combined MCSEs (module docstring; z
    from the family-wise error rate `fwer`).

    Parameters
    ----------
    draws
        `{stan_name: [chains, draws]}` (`Posterior.draws`); every reference key must be present.
    reference
        The reference draws `{stan_name: [chains, draws]}`.

    Returns:
        {"keys": {key: {"mean", "ref_mean", "sd", "ref_sd", "mean_error" (in ref sds), "sd_ratio", "ess_bulk",
        "rhat", "tail_khat", "mean_tol", "sd_tol" (both absolute), "mean_ok", "sd_ok" (None: not tested, the
        tail too heavy), "quantiles" ({q: {"value", "ref", "tol", "ok"}}, for a key with tail_khat >= 0.25)}},
        "max_mean_error" (worst |mean_error| of the keys whose mean is tested), "worst_sd_ratio" (the ratio with
        the largest |log ratio| of the keys whose sd is tested), "min_ess_bulk", "max_rhat", "converged" (ESS and
        R-hat within bounds), "z", "fwer", "tests", "heavy_tailed" (keys tested on quantiles), "passed"
        (converged and every test within tolerance), "failed" (the keys outside tolerance)}.
    """
    import arviz as az

    missing = [k for k in reference if k not in draws]
    if missing:
        raise ValueError(f"draws lack the reference key(s) {missing}")
    pairs = {k: (np.asarray(draws[k], dtype=np.float64), np.asarray(ref, dtype=np.float64))
             for k, ref in reference.items()}
    khat = {k: tail_khat(ref) for k, (_, ref) in pairs.items()}
    tests = sum((k < MEAN_MAX_KHAT) + (k < SD_MAX_KHAT) + (len(QUANTILES) if k >= SD_MAX_KHAT else 0)
                for k in khat.values())
    z = float(norm.ppf(1 - fwer / (2 * tests)))
    keys = {}
    for k, (ours, ref) in pairs.items():
        m, m_ref, s, s_ref = ours.mean(), ref.mean(), ours.std(ddof=1), ref.std(ddof=1)
        mean_tol = z * float(np.hypot(az.mcse(ours), az.mcse(ref)))
        sd_tol = z * float(np.hypot(az.mcse(ours, method="sd"), az.mcse(ref, method="sd")))
        row = {"mean": float(m), "ref_mean": float(m_ref), "sd": float(s), "ref_sd": float(s_ref),
               "mean_error": float((m - m_ref) / s_ref), "sd_ratio": float(s / s_ref),
               "ess_bulk": float(az.ess(ours, method="bulk")), "rhat": float(az.rhat(ours)) if ours.shape[0] > 1
               else float("nan"), "tail_khat": khat[k], "mean_tol": mean_tol, "sd_tol": sd_tol,
               "mean_ok": bool(abs(m - m_ref) <= mean_tol) if khat[k] < MEAN_MAX_KHAT else None,
               "sd_ok": bool(abs(s - s_ref) <= sd_tol) if khat[k] < SD_MAX_KHAT else None}
        if khat[k] >= SD_MAX_KHAT:
            row["quantiles"] = {}
            for q in QUANTILES:
                v, v_ref = float(np.quantile(ours, q)), float(np.quantile(ref, q))
                tol = z * float(np.hypot(az.mcse(ours, method="quantile", prob=q),
                                         az.mcse(ref, method="quantile", prob=q)))
                row["quantiles"][q] = {"value": v, "ref": v_ref, "tol": tol, "ok": bool(abs(v - v_ref) <= tol)}
        keys[k] = row
    failed = [k for k, r in keys.items() if r["mean_ok"] is False or r["sd_ok"] is False
              or not all(v["ok"] for v in r.get("quantiles", {}).values())]
    ess = min(r["ess_bulk"] for r in keys.values())
    rhat = max(r["rhat"] for r in keys.values())  # NaN for one chain: R-hat n/a, not a failure
    converged = bool(ess >= min_ess and not rhat > max_rhat)
    return {"keys": keys,
            "max_mean_error": max((abs(r["mean_error"]) for r in keys.values() if r["mean_ok"] is not None),
                                  default=float("nan")),
            "worst_sd_ratio": max((r["sd_ratio"] for r in keys.values() if r["sd_ok"] is not None),
                                  key=lambda q: abs(np.log(q)), default=float("nan")),
            "min_ess_bulk": ess, "max_rhat": rhat, "converged": converged, "z": z, "fwer": fwer, "tests": tests,
            "heavy_tailed": [k for k, r in keys.items() if "quantiles" in r],
            "passed": converged and not failed, "failed": failed}

"""`entropy-mcmc bench --suite posteriordb --db PATH`: our kernels and Pyro's NUTS on posteriordb's posteriors.

For each posterior (its Pyro port, `models.PORTS`) and each kernel, one run through `entropy_mcmc.MCMC`
(`chain_method="auto"`: vectorized where the port allows it), and Pyro's own NUTS on the same model in
the same command, its chains one after another in this process. Every run is scored against
posteriordb's reference draws by `reference.compare`: worst mean error in reference sds, worst sd
ratio, min bulk ESS, max R-hat, and pass/fail (converged, and within Monte Carlo standard-error tolerances of
the reference); beside them min ESS per second (warmup and sampling counted), min ESS per gradient of the sampling
phase (`suite.sampling_gradients`: NUTS and ChEES count each chain's leapfrog steps), divergences, the chains warmup
moved from a stranded mode (`samplers.stranded`, "chain->to"), and how the chains were evaluated.
`sequential=` names posteriors also run with `chain_method="sequential"`, which measures what the
vectorized evaluation saves.
"""
from __future__ import annotations

import datetime
import json
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..suite import sampling_gradients
from .models import PORTS
from .reference import compare, load_posterior

__all__ = ["run_suite", "SETTINGS"]

# chains, warmup and draws per chain, for ours and for Pyro's NUTS
SETTINGS = {"full": (4, 1000, 1000), "quick": (4, 300, 300), "tiny": (2, 30, 30)}
# ChEES tunes its trajectory length by a criterion over the chains: it runs at least this many (BlackJAX's
# examples use more); with 4 chains its warmup stalled on an HMM (min ESS 7 of 1200 draws)
CHEES_CHAINS = 16
COLUMNS = ("posterior", "sampler", "chains", "chains_eval", "passed", "max_mean_error", "worst_sd_ratio", "min_ess",
           "max_rhat", "ess_per_s", "ess_per_grad", "divergences", "restarted", "seconds", "failed")


def _score(posterior, samples: Dict[str, torch.Tensor], seconds: float, grads: Optional[int],
           divergences: int) -> Dict[str, object]:
    c = compare(posterior.draws(samples), posterior.reference)
    return {"passed": c["passed"], "max_mean_error": c["max_mean_error"], "worst_sd_ratio": c["worst_sd_ratio"],
            "min_ess": c["min_ess_bulk"], "max_rhat": c["max_rhat"], "ess_per_s": c["min_ess_bulk"] / seconds,
            "ess_per_grad": float("nan") if not grads else c["min_ess_bulk"] / grads,
            "divergences": int(divergences), "seconds": seconds, "failed": " ".join(c["failed"][:6]),
            "tested_on_quantiles": " ".join(c["heavy_tailed"])}


def _cross_chain(kernel: str) -> bool:
    from ...samplers import get_kernel_spec

    spec = get_kernel_spec(kernel)
    return any(o.name == "adapt_path_length" and o.default == "chees" for o in spec.options)


def _run_ours(posterior, kernel: str, chains: int, warmup: int, draws: int, seed: int,
              chain_method: str, mass: Optional[str] = None) -> Dict[str, object]:
    from ...infer import MCMC, Kernel
    from ...samplers import get_kernel_spec

    mass = mass if get_kernel_spec(kernel).capabilities.mass_matrix else None
    mcmc = MCMC(Kernel(kernel, model=posterior.port.model, **({"adapt_mass": mass} if mass else {})),
                num_warmup=warmup, num_samples=draws, num_chains=chains, progress_bar=False,
                chain_method=chain_method)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is what the comparison with the reference measures
        mcmc.run(seed, **posterior.kwargs)
        seconds = time.perf_counter() - t0
        samples = mcmc.get_samples(group_by_chain=True)
    r = mcmc.result
    label = kernel if not mass else f"{kernel} ({r.attrs['mass_matrix_choice'].split(' ')[0] or mass} mass)"
    return {"sampler": label if chain_method == "auto" else f"{label} ({chain_method})",
            "chains_eval": mcmc.target.method, "restarted": r.attrs.get("restarted_chains", ""),
            **_score(posterior, samples, seconds, sampling_gradients(r), mcmc.num_divergences)}


def _run_pyro_nuts(posterior, chains: int, warmup: int, draws: int, seed: int) -> Dict[str, object]:
    import pyro
    from pyro.infer import MCMC as PyroMCMC
    from pyro.infer import NUTS as PyroNUTS

    per_chain: List[Dict[str, torch.Tensor]] = []
    divergences = 0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in range(chains):
            pyro.set_rng_seed(seed + c)
            mcmc = PyroMCMC(PyroNUTS(posterior.port.model), num_samples=draws, warmup_steps=warmup, num_chains=1,
                            disable_progbar=True)
            mcmc.run(**posterior.kwargs)
            per_chain.append(mcmc.get_samples())
            divergences += sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values())
    seconds = time.perf_counter() - t0
    samples = {k: torch.stack([s[k] for s in per_chain]) for k in per_chain[0]}
    return {"sampler": "pyro-nuts", "chains_eval": "one by one", "restarted": "",
            **_score(posterior, samples, seconds, None, divergences)}


def run_suite(db_path, names: Optional[Sequence[str]] = None, kernels: Sequence[str] = ("nuts", "chees-hmc"),
              pyro_nuts: bool = True, mode: str = "full", seed: int = 0, sequential: Sequence[str] = (),
              out_dir: Optional[str] = None, chains: Optional[int] = None,
              mass: Optional[str] = None) -> List[Dict[str, object]]:
    """Run and score every (posterior, sampler) pair; print a table per posterior as it finishes, and write
    `posteriordb.csv`, `posteriordb.md` and `posteriordb.json` to `out_dir` when given, after each posterior.

    Parameters
    ----------
    db_path
        A posterior database folder (posteriordb's layout; a full clone or a subset).
    names
        Posteriors to run (default: every ported one that the database has with reference draws).
    kernels
        Registry kernels run through `entropy_mcmc.MCMC` (`Kernel(name, model=...)`).
    pyro_nuts
        Also run Pyro's NUTS, chains one after another, on the same model.
    mode
        "full", "quick" or "tiny" (`SETTINGS`: chains, warmup, draws).
    sequential
        Posteriors whose first kernel also runs with `chain_method="sequential"`.
    chains
        Overrides the mode's number of chains (a ChEES kernel runs at least CHEES_CHAINS).
    mass
        The mass matrix our kernels with one adapt ("diag", "dense", "auto"; None: each kernel's default).
    """
    import pandas as pd

    if mode not in SETTINGS:
        raise ValueError(f"mode must be one of {sorted(SETTINGS)}, got {mode!r}")
    n_chains, warmup, draws = SETTINGS[mode]
    n_chains = n_chains if chains is None else chains
    names = list(names) if names else sorted(PORTS)
    unknown = [n for n in [*names, *sequential] if n not in PORTS]
    if unknown:
        raise ValueError(f"no Pyro port of {unknown}; ported: {', '.join(sorted(PORTS))}")
    posteriors = [load_posterior(db_path, n) for n in names]  # every path and name checked before any run
    rows: List[Dict[str, object]] = []

    def write():
        """The tables so far, rewritten after each posterior: a long run shows its progress and keeps what it ran."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        df = pd.DataFrame(rows)[list(COLUMNS)]
        df.to_csv(out / "posteriordb.csv", index=False)
        (out / "posteriordb.md").write_text(df.to_markdown(index=False, floatfmt=".3g") + "\n")
        record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "db": str(db_path), "mode": mode, "chains": n_chains, "warmup": warmup, "draws": draws,
                  "seed": seed, "posteriors": [p.name for p in posteriors], "rows": rows}
        (out / "posteriordb.json").write_text(json.dumps(record, indent=1))

    for posterior in posteriors:
        runs = [(k, "auto") for k in kernels]
        if posterior.name in sequential:
            runs.append((kernels[0], "sequential"))
        for kernel, method in runs:
            chains_k = max(n_chains, CHEES_CHAINS) if _cross_chain(kernel) else n_chains
            rows.append({"posterior": posterior.name, "chains": chains_k,
                         **_run_ours(posterior, kernel, chains_k, warmup, draws, seed, method, mass)})
        if pyro_nuts:
            rows.append({"posterior": posterior.name, "chains": n_chains,
                         **_run_pyro_nuts(posterior, n_chains, warmup, draws, seed)})
        print(pd.DataFrame([r for r in rows if r["posterior"] == posterior.name])[list(COLUMNS)].to_string(
            index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
        if out_dir is not None:
            write()
    return rows

"""NUTS on hard hierarchical geometry, against Pyro NUTS: divergences and R-hat on the funnel and centred eight schools.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nuts_hierarchical.py --chains 4 --warmup 500 --draws 1000 \
        --out results/nuts_hierarchical.json

Both samplers run the same Pyro models (ours through `target_from_model`, chains as one batch; Pyro's
`MCMC(NUTS(model))`, chains one after the other): Neal's funnel x_0 ~ N(0, 3^2), x_{1:9} ~ N(0, e^{2 x_0})
in its centred form, and eight schools centred (theta_j ~ N(mu, tau), the geometry that makes NUTS
diverge). Reported per run: wall time, divergent transitions, max R-hat, min bulk ESS, and the posterior
mean and sd of x_0 (funnel, true 0 and 3) or log tau (eight schools).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch

EIGHT_Y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=torch.float64)
EIGHT_SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=torch.float64)


def funnel_model():
    x0 = pyro.sample("x0", dist.Normal(torch.zeros((), dtype=torch.float64), 3.0))
    with pyro.plate("dims", 9, dim=-1):
        pyro.sample("x", dist.Normal(torch.zeros((), dtype=torch.float64), torch.exp(x0)))


def eight_schools_centred(sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(torch.zeros((), dtype=sigma.dtype), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(torch.full((), 5.0, dtype=sigma.dtype)))
    with pyro.plate("J", sigma.shape[-1], dim=-1):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


CASES = {"funnel": (funnel_model, (), "x0", lambda v: v),
         "eight_schools_centred": (eight_schools_centred, (EIGHT_SIGMA, EIGHT_Y), "tau", np.log)}


def summarize(draws: dict, name: str, transform):
    """Max R-hat, min bulk ESS over all sites, and the mean and sd of the watched site."""
    import arviz as az

    idata = az.from_dict(posterior={k: np.asarray(v) for k, v in draws.items()})
    s = az.summary(idata, kind="diagnostics")
    watched = transform(np.asarray(draws[name], dtype=np.float64))
    return {"max_rhat": float(s["r_hat"].max()), "min_ess_bulk": float(s["ess_bulk"].min()),
            "mean": float(watched.mean()), "sd": float(watched.std())}


def run_ours(case: str, chains: int, warmup: int, draws: int, seed: int):
    from entropy_mcmc.pyro import target_from_model
    from entropy_mcmc.samplers import run_chains

    model, args, name, transform = CASES[case]
    target = target_from_model(model, *args)
    gen = torch.Generator().manual_seed(seed)
    init = target.initial_position(chains, generator=gen)
    t0 = time.perf_counter()
    res = run_chains(target, "nuts", chains=chains, num_warmup=warmup, num_draws=draws, seed=seed,
                     dtype=torch.float64, init=init, warn=False)
    wall = time.perf_counter() - t0
    constrained = {k: v.numpy() for k, v in target.constrain(res.draws).items()}
    return {"system": "entropy-mcmc NUTS", "case": case, "wall_s": wall, "divergences": res.num_divergences,
            "mean_tree_depth": float(res.stats["tree_depth"].double().mean()),
            **summarize(constrained, name, transform)}


def run_pyro(case: str, chains: int, warmup: int, draws: int, seed: int):
    from pyro.infer import MCMC, NUTS

    model, args, name, transform = CASES[case]
    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcmc = MCMC(NUTS(model), num_samples=draws, warmup_steps=warmup, num_chains=chains, disable_progbar=True,
                    mp_context=None)
        mcmc.run(*args)
    wall = time.perf_counter() - t0
    samples = {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}
    div = sum(len(v) for v in mcmc.diagnostics()["divergences"].values())
    return {"system": "Pyro NUTS", "case": case, "wall_s": wall, "divergences": div,
            **summarize(samples, name, transform)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default="funnel,eight_schools_centred")
    ap.add_argument("--systems", default="ours,pyro", help="which to run: ours, pyro or both (default)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    systems = {"ours": run_ours, "pyro": run_pyro}
    chosen = [systems[s] for s in args.systems.split(",")]
    torch.set_num_threads(1)
    rows = []
    for case in args.cases.split(","):
        for fn in chosen:
            r = fn(case, args.chains, args.warmup, args.draws, args.seed)
            rows.append(r)
            print(f"{r['case']:<22} {r['system']:<18} wall {r['wall_s']:7.1f} s, divergences {r['divergences']:5d}, "
                  f"max R-hat {r['max_rhat']:.3f}, min ESS {r['min_ess_bulk']:7.0f}, watched mean {r['mean']:+.3f} "
                  f"sd {r['sd']:.3f}", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"date": datetime.datetime.now().astimezone().isoformat(),
                                              "args": vars(args), "load": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

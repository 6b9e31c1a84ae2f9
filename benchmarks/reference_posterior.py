"""Reference posterior moments of the BLR targets from a long run of an independent, trusted sampler.

    .venv/bin/python benchmarks/reference_posterior.py [--chains 8 --warmup 2000 --draws 25000 --seed 20240611]

BlackJAX NUTS (needs the `peers` extra: jax, blackjax) in float64 on each of German,
Australian and Heart, with the design matrix `entropy_mcmc.targets.load_dataset` builds
(standardized features plus intercept) and a N(0, I) prior. Every chain runs BlackJAX's
Stan-style window adaptation (step size + diagonal mass matrix) for `--warmup` steps, then
`--draws` NUTS steps. Writes `entropy_mcmc/targets/data/blr_reference.json` with, per
dataset, the posterior mean and standard deviation per dimension, ArviZ's MCSE of both,
min bulk/tail ESS and max R-hat; `LogisticRegression.from_dataset` attaches mean/std to
the target and `tests/test_blr_reference.py` checks our HMC against them.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "entropy_mcmc" / "targets" / "data" / "blr_reference.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["german", "australian", "heart"])
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--draws", type=int, default=25000)
    ap.add_argument("--target-accept", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    import arviz as az
    import blackjax
    import jax

    from entropy_mcmc.benchmarks.peers import blackjax_run

    record = {
        "sampler": f"BlackJAX {blackjax.__version__} NUTS (jax {jax.__version__}), float64",
        "settings": {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
                     "target_accept": args.target_accept,
                     "adaptation": "blackjax.window_adaptation per chain (step size, diagonal inverse mass matrix)",
                     "init": "N(0, 0.1^2 I)", "prior": "N(0, I)",
                     "design": "entropy_mcmc.targets.load_dataset: standardized features, intercept first",
                     "script": "benchmarks/reference_posterior.py"},
        "seed": args.seed,
        "date": datetime.date.today().isoformat(),
        "datasets": {},
    }
    for i, name in enumerate(args.datasets):
        t0 = time.perf_counter()
        r = blackjax_run(name, "nuts", args.chains, args.warmup, args.draws, seed=args.seed + i, dtype="float64",
                         target_accept=args.target_accept)
        ds = az.convert_to_dataset({"w": r.draws})
        mean = r.draws.reshape(-1, r.draws.shape[-1]).mean(0)
        std = r.draws.reshape(-1, r.draws.shape[-1]).std(0, ddof=1)
        ess_bulk = az.ess(ds, method="bulk")["w"].values
        ess_tail = az.ess(ds, method="tail")["w"].values
        mcse_mean = az.mcse(ds, method="mean")["w"].values
        mcse_sd = az.mcse(ds, method="sd")["w"].values
        rhat = az.rhat(ds)["w"].values
        record["datasets"][name] = {
            "dim": int(r.draws.shape[-1]),
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "mcse_mean": [float(v) for v in mcse_mean],
            "mcse_std": [float(v) for v in mcse_sd],
            "ess_min": float(ess_bulk.min()),
            "ess_tail_min": float(ess_tail.min()),
            "mcse_mean_max": float(mcse_mean.max()),
            "mcse_std_max": float(mcse_sd.max()),
            "rhat_max": float(rhat.max()),
            "acceptance": r.acceptance,
            "divergences": r.divergences,
            "mean_step_size": r.step_size,
            "grad_evals": r.num_grad_evals,
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        d = record["datasets"][name]
        print(f"{name}: {d['dim']} dims, intercept {mean[0]:.4f} (sd {std[0]:.4f}), min ESS {d['ess_min']:.0f}, "
              f"max MCSE(mean) {d['mcse_mean_max']:.2g}, max R-hat {d['rhat_max']:.4f}, accept "
              f"{r.acceptance:.3f}, divergences {r.divergences}, {d['wall_s']} s", flush=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""BlackJAX HMC as one whole process, for the time-to-result comparison with `entropy-mcmc sample`.

    /usr/bin/time -v .venv/bin/python benchmarks/peer_blackjax_process.py \
        --chains 256 --warmup 500 --draws 1000 --leapfrog-steps 10 --seed 0 --out results/bj.nc

Imports (JAX, BlackJAX, NumPy, ArviZ; never torch), JIT compilation, BlackJAX's
Stan-style window adaptation per chain (vmap) for `--warmup` steps, `--draws`
vectorized HMC steps, then the same post-processing `entropy-mcmc sample` does:
the ArviZ summary (printed unless `--no-summary`) and, with `--out`, the NetCDF file.
`--algorithm nuts` runs NUTS instead, `--algorithm chees` ChEES-HMC (`chees_adaptation`, `dynamic_hmc`). The last
line reports min bulk ESS and the time since the interpreter started this script.
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="german")
    ap.add_argument("--algorithm", choices=("hmc", "nuts", "chees"), default="hmc")
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--leapfrog-steps", type=int, default=10)
    ap.add_argument("--target-accept", type=float, default=0.8)
    ap.add_argument("--step-size-jitter", type=float, default=0.0,
                    help="redraw each chain's step size in [s(1-J), s(1+J)] every sampling step (not a BlackJAX "
                         "default; for a like-for-like comparison with entropy-mcmc's HMC)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-summary", action="store_true")
    args = ap.parse_args()

    import arviz as az

    from entropy_mcmc.benchmarks.peers import blackjax_run
    from entropy_mcmc.benchmarks.summary import report_process

    t_imports = time.perf_counter()
    r = blackjax_run(args.dataset, args.algorithm, args.chains, args.warmup, args.draws, args.leapfrog_steps,
                     seed=args.seed, dtype=args.dtype, target_accept=args.target_accept,
                     step_size_jitter=args.step_size_jitter)
    idata = az.from_dict(posterior={"x": r.draws.astype(args.dtype)},
                         attrs={"sampler": f"blackjax {r.kernel}", **{k: str(v) for k, v in r.settings.items()}})
    report_process(idata, args.out, not args.no_summary,
                   f"blackjax {r.kernel}: {args.chains} chains, {args.warmup} warmup + {args.draws} draws; imports "
                   f"{t_imports - T_START:.2f} s, compile {r.compile_time:.2f} s, warmup {r.warmup_time:.2f} s, "
                   f"sampling {r.sampling_time:.2f} s; acceptance {r.acceptance:.3f}, step size {r.step_size:.4g}, "
                   f"divergences {r.divergences}, sampling gradient evaluations {r.num_grad_evals}",
                   r.sampling_time, T_START, digits=1)


if __name__ == "__main__":
    main()

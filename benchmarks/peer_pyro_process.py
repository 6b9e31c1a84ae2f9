"""Pyro NUTS on German BLR as one whole process, for the time-to-result comparison with `entropy-mcmc sample`.

    /usr/bin/time -v .venv/bin/python benchmarks/peer_pyro_process.py --warmup 1000 --draws 2000 --seed 0

The model is written the usual Pyro way (`entropy_mcmc.benchmarks.peers.pyro_nuts`):
one chain by default (Pyro runs further chains in other processes or one after
another), then the same ArviZ summary / NetCDF post-processing as `entropy-mcmc sample`.
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="german")
    ap.add_argument("--chains", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-summary", action="store_true")
    args = ap.parse_args()

    import arviz as az

    from entropy_mcmc.benchmarks.peers import pyro_nuts
    from entropy_mcmc.benchmarks.summary import report_process

    t_imports = time.perf_counter()
    r = pyro_nuts(args.dataset, args.warmup, args.draws, args.chains, seed=args.seed)
    idata = az.from_dict(posterior={"x": r.draws.astype("float32")}, attrs={"sampler": "pyro NUTS"})
    report_process(idata, args.out, not args.no_summary,
                   f"pyro NUTS: {args.chains} chain(s), {args.warmup} warmup + {args.draws} draws; imports "
                   f"{t_imports - T_START:.2f} s, warmup {r.warmup_time:.2f} s, sampling {r.sampling_time:.2f} s; "
                   f"step size {r.step_size:.4g}, gradients {r.num_grad_evals_warmup} + {r.num_grad_evals}",
                   r.sampling_time, T_START)


if __name__ == "__main__":
    main()

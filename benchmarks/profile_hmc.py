"""Where HMC's time goes on German BLR (256 chains, 10 leapfrog steps): per-op profile and thread settings.

    .venv/bin/python benchmarks/profile_hmc.py [--chains 256] [--steps 40] [--threads 1 2]

Prints, for each torch thread count: milliseconds per HMC transition and per leapfrog
step, the cost of the target's `grad` and `energy_and_grad` alone, and the torch.profiler
table of the ops inside HMC transitions (self CPU time).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from entropy_mcmc.samplers import HMC
from entropy_mcmc.targets import get_target


def per_call(fn, n):
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="german")
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--leapfrog-steps", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args()

    target = get_target(args.target)
    dtype = getattr(torch, args.dtype)
    x = 0.1 * torch.randn(args.chains, target.dim, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for threads in args.threads:
        torch.set_num_threads(threads)
        kernel = HMC(target, step_size=0.05, num_steps=args.leapfrog_steps, seed=0)
        state = kernel.init(x)

        def step():
            nonlocal state
            state, _ = kernel.step(state)

        t_step = per_call(step, args.steps)
        t_grad = per_call(lambda: target.grad(state.position), 100) if hasattr(target, "grad") else float("nan")
        t_eg = per_call(lambda: target.energy_and_grad(state.position), 100)
        print(f"threads {threads}: HMC transition {t_step * 1e3:.3f} ms = {t_step / args.leapfrog_steps * 1e3:.3f} ms "
              f"per leapfrog step; target.grad {t_grad * 1e3:.3f} ms, energy_and_grad {t_eg * 1e3:.3f} ms; "
              f"overhead outside the target {(t_step - (args.leapfrog_steps - 1) * t_grad - t_eg) * 1e3:.3f} ms "
              f"per transition", flush=True)
        if not args.no_table:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(20):
                    step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


if __name__ == "__main__":
    main()

"""Where HMC's time goes on German BLR (256 chains, 10 leapfrog steps): per-op profile and thread settings.

    .venv/bin/python benchmarks/profile_hmc.py [--chains 256] [--steps 40] [--threads 1 2]

Prints, for each torch thread count: milliseconds per HMC transition and per leapfrog
step, the cost of the target's `grad` and `energy_and_grad` alone, and the torch.profiler
table of the ops inside HMC transitions (self CPU time). `--baseline` adds the same
figures for the formulation the BLR target had before (logits X w, softplus(l) - y l,
(sigmoid(l) - y) X + w, fresh tensors, no gradient-only path), side by side in one run.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import torch.nn.functional as F

from entropy_mcmc.samplers import build_kernel
from entropy_mcmc.targets import LogisticRegression, get_target, load_dataset


class BaselineLogisticRegression(LogisticRegression):
    """The BLR energy as first written (commit b8ebaa2): every leapfrog step pays for the energy too."""

    grad = None  # HMC falls back to energy_and_grad for its inner steps

    def energy_and_grad(self, w):
        logits = w @ self._c.get("xt", w)
        y = self._c.get("y", w)
        u = (F.softplus(logits) - y * logits).sum(1) + 0.5 * (w * w).sum(1)
        g = (torch.sigmoid(logits) - y) @ self._c.get("x", w) + w
        return u, g


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
    ap.add_argument("--baseline", action="store_true", help="also time the BLR target's original formulation")
    args = ap.parse_args()

    targets = [("current", get_target(args.target))]
    if args.baseline:
        targets.append(("baseline", BaselineLogisticRegression(*load_dataset(args.target))))
    dtype = getattr(torch, args.dtype)
    x = 0.1 * torch.randn(args.chains, targets[0][1].dim, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for (label, target), threads in [(t, n) for n in args.threads for t in targets]:
        torch.set_num_threads(threads)
        kernel = build_kernel("hmc", target, num_warmup=0, step_size=0.05, jitter=0.0, num_steps=args.leapfrog_steps,
                              seed=0)
        state = kernel.init(x)

        def step():
            nonlocal state
            state, _ = kernel.step(state)

        t_step = per_call(step, args.steps)
        t_eg = per_call(lambda: target.energy_and_grad(state.position), 100)
        t_grad = per_call(lambda: target.grad(state.position), 100) if target.grad is not None else t_eg
        print(f"{label}, threads {threads}: HMC transition {t_step * 1e3:.3f} ms = "
              f"{t_step / args.leapfrog_steps * 1e3:.3f} ms "
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

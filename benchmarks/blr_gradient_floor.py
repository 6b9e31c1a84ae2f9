"""The matrix-product floor of a BLR gradient, and what the target's `grad` and `energy_and_grad` cost against it.

    .venv/bin/python benchmarks/blr_gradient_floor.py [--target german] [--chains 64 256 1024 4096]

One torch thread, float32. For each chain count: the two matrix products one gradient cannot avoid
(z = A W^T, then A^T s with s of z's shape), the target's `grad` sliced as it ships and unsliced
(`SLICE_ABOVE` lifted), and `energy_and_grad` (adds the softplus sum); milliseconds per call, the best of
7 rounds, measured both as CPU time of this process and as wall time (they differ when the cores are
shared). The floor of a run is the floor per gradient times its gradient evaluations.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from entropy_mcmc.targets import get_target


def best_ms(fn, clock, n=10, rounds=7):
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = clock()
        for _ in range(n):
            fn()
        best = min(best, (clock() - t0) / n)
    return best * 1e3


def two_products(target, chains: int):
    """A call of the two matrix products one BLR gradient cannot avoid (z = A W^T, then A^T z) at `chains`."""
    w = 0.1 * torch.randn(chains, target.dim, generator=torch.Generator().manual_seed(0))
    a, at = target._c.get("a", w), target._c.get("at", w)
    z = torch.empty(a.shape[0], chains)
    return lambda: torch.mm(at, torch.mm(a, w.T, out=z))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="german")
    ap.add_argument("--chains", type=int, nargs="+", default=[64, 256, 1024, 4096])
    args = ap.parse_args()
    torch.set_num_threads(1)
    target = get_target(args.target)
    unsliced = get_target(args.target)
    unsliced.SLICE_ABOVE = float("inf")
    print(f"{args.target}, float32, 1 thread, load average {os.getloadavg()[0]:.2f}")
    for chains in args.chains:
        w = 0.1 * torch.randn(chains, target.dim, generator=torch.Generator().manual_seed(0))
        calls = {"two matrix products": two_products(target, chains),
                 "grad (sliced, shipped)": lambda: target.grad(w),
                 "grad unsliced": lambda: unsliced.grad(w),
                 "energy_and_grad (shipped)": lambda: target.energy_and_grad(w)}
        for name, fn in calls.items():
            print(f"  {chains:5d} chains  {name:<26} CPU {best_ms(fn, time.process_time):7.3f} ms  "
                  f"wall {best_ms(fn, time.perf_counter):7.3f} ms", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

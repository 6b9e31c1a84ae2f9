"""Experiment: mode weights of MALA alone against replica exchange around MALA, at an equal gradient budget.

The target is a 2-D mixture with unequal weights (0.5 / 0.357 / 0.143) and widths (sds 0.6 / 0.4 / 0.25), modes
8-9 units apart (13-35 of their sds), with a closed-form energy (`GaussianMixture`). Chains start from broad noise
N(0, 3^2 I), as an energy model's sampler does. Each run gets the same gradient evaluations per chain: MALA takes
`--warmup` + `--grads` steps, replica exchange with R replicas takes 1/R of each (R MALA gradients per step). A draw
belongs to the component of highest responsibility; the error is each mode's share of the draws against its
weight (largest absolute and relative error over the modes, and the largest error in MCSEs: ArviZ's MCSE of the
mean of the mode indicators, pooled over chains; for chains that never leave their mode it only measures the spread
between chains).

    .venv/bin/python benchmarks/replica_exchange.py [--ladders 4x10 8x30 8x100] [--seeds 0 1 2 3 4] [--threads 1]

A ladder RxT is R replicas on the geometric ladder from 1 to T_max = T.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.samplers import build_kernel, sample
from entropy_mcmc.targets.gaussian import GaussianMixture

WEIGHTS = (0.5, 0.357, 0.143)
MEANS = ((-4.0, -2.0), (4.0, -2.0), (0.0, 4.5))
SCALES = (0.6, 0.4, 0.25)


def mode_indicators(target: GaussianMixture, draws: torch.Tensor) -> np.ndarray:
    """`[chains, draws, modes]`: whether each draw's component of highest responsibility is each mode."""
    x = draws.double()
    sq = ((x[..., None, :] - target.means) ** 2).sum(-1)
    log_r = target.weights.log() - 2 * target.scales.log() - 0.5 * sq / target.scales ** 2
    return torch.nn.functional.one_hot(log_r.argmax(-1), len(WEIGHTS)).double().numpy()


def ladder(text: str):
    """'RxT' -> (R, T_max)."""
    r, t = text.split("x")
    return int(r), float(t)


def run(target, replicas, max_temperature, args, seed):
    r = replicas or 1
    kernel = build_kernel("mala", target, num_warmup=args.warmup // r, replicas=replicas,
                          max_temperature=max_temperature if replicas else None)
    gen = torch.Generator().manual_seed(10_000 + seed)
    init = 3.0 * torch.randn(args.chains, 2, generator=gen, dtype=torch.float64)
    t0 = time.perf_counter()
    res = sample(kernel, init, args.grads // r, args.warmup // r, seed=seed, progress=False, warn=False)
    seconds = time.perf_counter() - t0
    inside = mode_indicators(target, res.draws)
    shares = inside.mean((0, 1))
    err = np.abs(shares - np.asarray(WEIGHTS))
    swaps = [float(v.double().nanmean()) for k, v in sorted(res.stats.items()) if k.startswith("swap_accept_")]
    return {"replicas": r, "max_temperature": max_temperature if replicas else None, "seed": seed,
            "grads_per_chain": res.num_grad_evals + res.num_grad_evals_warmup, "shares": shares.tolist(),
            "max_abs_error": float(err.max()), "max_rel_error": float((err / np.asarray(WEIGHTS)).max()),
            "max_z": float((err / mcse(inside)).max()),
            "accept": res.acceptance_rate, "swap_accept": swaps, "seconds": seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ladders", type=ladder, nargs="+", default=[(4, 10.0), (8, 10.0), (4, 30.0), (8, 30.0),
                                                                   (8, 100.0), (16, 100.0)])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=800, help="warmup gradient evaluations per chain")
    ap.add_argument("--grads", type=int, default=8000, help="sampling gradient evaluations per chain")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/replica_exchange.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    target = GaussianMixture(torch.tensor(MEANS), torch.tensor(SCALES), torch.tensor(WEIGHTS))
    print(f"load average {os.getloadavg()[0]:.1f}; weights {WEIGHTS}")
    print(f"{'kernel':>12} {'seed':>4} {'grads':>6} {'shares':>17} {'max|err|':>8} {'max rel':>7} {'max z':>6} "
          f"{'accept':>6} {'swap accept (min-max)':>21} {'time_s':>6}")
    rows = []
    for seed in args.seeds:
        for replicas, max_temperature in [(None, None), *args.ladders]:
            row = run(target, replicas, max_temperature, args, seed)
            rows.append(row)
            name = "MALA" if replicas is None else f"RX {replicas}x{max_temperature:g}"
            shares = " ".join(f"{s:.3f}" for s in row["shares"])
            swaps = f"{min(row['swap_accept']):.2f}-{max(row['swap_accept']):.2f}" if row["swap_accept"] else ""
            print(f"{name:>12} {seed:>4} {row['grads_per_chain']:>6} {shares:>17} {row['max_abs_error']:>8.3f} "
                  f"{row['max_rel_error']:>7.2f} {row['max_z']:>6.1f} {row['accept']:>6.3f} {swaps:>21} "
                  f"{row['seconds']:>6.1f}", flush=True)
    for key in dict.fromkeys((row["replicas"], row["max_temperature"]) for row in rows):
        sel = [row for row in rows if (row["replicas"], row["max_temperature"]) == key]
        print(f"replicas {key[0]}, T_max {key[1]}: max |err| mean {np.mean([s['max_abs_error'] for s in sel]):.3f} "
              f"(worst {max(s['max_abs_error'] for s in sel):.3f}), max rel err mean "
              f"{np.mean([s['max_rel_error'] for s in sel]):.2f} (worst {max(s['max_rel_error'] for s in sel):.2f}), "
              f"max z mean {np.mean([s['max_z'] for s in sel]):.1f}, "
              f"seconds mean {np.mean([s['seconds'] for s in sel]):.1f}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

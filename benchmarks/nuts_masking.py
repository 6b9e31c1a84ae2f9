"""The cost of running NUTS chains as one batch: time per transition against the mean and the maximum tree size.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nuts_masking.py --target german --chains 256 --warmup 300 \
        --draws 200 --out results/nuts_masking.json

Warms NUTS up once (step size and diagonal mass matrix), then times `--draws` transitions one by one
with the adapted kernel, evaluating leaves on every chain (`compact=False`: masked chains are computed
and thrown away) and on the still-active chains only (`compact=True`, the default), from the same
state and seed, so both see the same trees. Per transition it records the wall time, the mean and the
maximum number of leapfrog steps over the chains (the maximum is the number of batched leapfrog steps
the transition costs). Prints a table binned by the maximum, and the wasted fraction
1 - mean/max of the masked evaluations.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch

from entropy_mcmc.samplers import build_kernel, sample, spawn_seeds
from entropy_mcmc.targets import get_target


def timed_transitions(kernel, state, draws: int, seed: int):
    base = kernel.base
    base.reseed(seed)
    rows = []
    for _ in range(draws):
        t0 = time.perf_counter()
        state, info = base.step(state)
        dt = time.perf_counter() - t0
        n = info.extras["n_steps"].double()
        rows.append({"time_s": dt, "mean_steps": float(n.mean()), "max_steps": int(n.max()),
                     "mean_depth": float(info.extras["tree_depth"].double().mean()),
                     "max_depth": int(info.extras["tree_depth"].max())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="german")
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    target = get_target(args.target)
    init_seed, kernel_seed, run_seed = spawn_seeds(args.seed, 3)
    kernel = build_kernel("nuts", target, num_warmup=args.warmup)
    init = target.initial_positions(args.chains, init_seed)
    warm = sample(kernel, init, 1, num_warmup=args.warmup, progress=False, seed=kernel_seed, warn=False)
    state = warm.final_state
    print(f"NUTS on {args.target}, {args.chains} chains, after {args.warmup} warmup steps: step size "
          f"{float(kernel.base.step_size):.4g}", flush=True)
    results = {}
    for compact in (False, True):
        kernel.base.compact = compact
        rows = timed_transitions(kernel, state, args.draws, run_seed)
        results["compact" if compact else "masked"] = rows
    bins = sorted({r["max_steps"] for r in results["masked"]})
    print("\n| max steps over chains | transitions | mean steps per chain | masked: ms per transition | "
          "compact: ms per transition |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for b in bins:
        idx = [i for i, r in enumerate(results["masked"]) if r["max_steps"] == b]
        mean_steps = statistics.mean(results["masked"][i]["mean_steps"] for i in idx)
        tm = statistics.median(results["masked"][i]["time_s"] for i in idx) * 1e3
        tc = statistics.median(results["compact"][i]["time_s"] for i in idx) * 1e3
        print(f"| {b} | {len(idx)} | {mean_steps:.1f} | {tm:.1f} | {tc:.1f} |")
    masked, compact = results["masked"], results["compact"]
    mean_steps = sum(r["mean_steps"] for r in masked) / len(masked)
    max_steps = sum(r["max_steps"] for r in masked) / len(masked)
    tm, tc = sum(r["time_s"] for r in masked), sum(r["time_s"] for r in compact)
    print(f"\nmean over transitions: {mean_steps:.2f} leapfrog steps per chain, {max_steps:.2f} batched steps "
          f"(the deepest chain): masked evaluations waste {100 * (1 - mean_steps / max_steps):.0f}% of the "
          f"gradient work; mean tree depth {statistics.mean(r['mean_depth'] for r in masked):.2f}, "
          f"max {max(r['max_depth'] for r in masked)}")
    print(f"total: masked {tm:.2f} s ({1e3 * tm / (max_steps * len(masked)):.3f} ms per batched step), "
          f"compact {tc:.2f} s; compact / masked = {tc / tm:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"date": datetime.datetime.now().astimezone().isoformat(),
                                              "args": vars(args), "load": os.getloadavg(), "runs": results}))


if __name__ == "__main__":
    main()

"""The learned sampler run the way a user runs it (issue 15): chains from the default start near zero.

    .venv/bin/python benchmarks/learned_user_start.py --target australian --sampler australian.pt --seed 1

The sampler file comes from `entropy-mcmc train-sampler --target australian --out australian.pt --seed 0`.
Every run goes through `samplers.run_chains`, what `entropy-mcmc sample` calls, with 64 chains x 2000
draws from the CLI's default start `target.initial_positions` (`--start default`: N(mode, 0.1^2 I) for the
logistic regression targets, N(0, 0.1^2 I) for the others) or from N(0, 0.1^2 I) (`--start zero`, the
default start before the mode-centred one; the same draws), under these settings:

- pure learned kernel, no warmup (`--warmup 0 --mixture-share 0`, the form the README showed);
- pure learned kernel, 4000 learned steps discarded (the issue's `--warmup 4000` before this change,
  when warmup ran the learned kernel);
- the handoff alone (`--mixture-share 0`), the MALA share alone (`--warmup 0`), and both (the default)
  with 500 (the CLI default) and 4000 warmup steps;
- the exact-start column of the thesis' convention: the pure learned kernel and the default mixture
  from chains started at posterior draws (the last states of a converged dense-MALA run, seed + 1);
- MALA and HMC as `entropy-mcmc sample` runs them (500 warmup steps), side by side.

For each: max R-hat (ArviZ, all draws), stuck chains (no accepted move over the last 10% of draws) and
the longest run of steps without an accepted move, the sds against the shipped reference posterior
(`load_reference`), the thesis' ESS/5k and ESS/s from the last 1000 draws (`learned_sampler.evaluate`),
ArviZ's min bulk ESS of all draws, and the warmup and sampling times. Writes a JSON and a markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_sampler import evaluate, machine  # noqa: E402

from entropy_mcmc.diagnostics import ess, rhat  # noqa: E402
from entropy_mcmc.samplers import run_chains  # noqa: E402
from entropy_mcmc.samplers.base import spawn_seeds  # noqa: E402
from entropy_mcmc.targets import get_target  # noqa: E402
from entropy_mcmc.targets.logistic_regression import load_reference  # noqa: E402

CHAINS, DRAWS = 64, 2000


def longest_rejection_run(accepted: torch.Tensor) -> torch.Tensor:
    """Per chain, the longest run of consecutive steps without an accepted move (`accepted` `[chains, steps]`)."""
    run = torch.zeros(accepted.shape[0], dtype=torch.long)
    best = torch.zeros_like(run)
    for a in accepted.T:
        run = torch.where(a, torch.zeros_like(run), run + 1)
        best = torch.maximum(best, run)
    return best


def figures(label, result, target, ref, discard=0):
    draws = result.draws[:, discard:]
    accepted = result.stats["accepted"][:, discard:]
    x = draws.double().numpy()
    sd = x.reshape(-1, x.shape[-1]).std(0, ddof=1)
    ratio = sd / np.asarray(ref["std"])
    tail = accepted[:, -max(1, accepted.shape[1] // 10):]

    class Trimmed:  # the last DRAWS steps of a run whose first `discard` are warmup
        pass

    trimmed = Trimmed()
    trimmed.draws, trimmed.num_chains = draws, result.num_chains
    trimmed.acceptance_rate = float(result.stats["acceptance_prob"][:, discard:].float().mean())
    trimmed.num_grad_evals = result.num_grad_evals * (result.num_steps - discard) / result.num_steps
    trimmed.num_steps = result.num_steps - discard
    trimmed.sampling_time = result.sampling_time * trimmed.num_steps / result.num_steps
    trimmed.stats = {k: v[:, discard:] for k, v in result.stats.items()}
    mean = torch.tensor(ref["mean"], dtype=torch.float64)
    var = torch.tensor(ref["std"], dtype=torch.float64) ** 2
    row = evaluate(target.name, trimmed, target, mean, var, label)
    warmup_s = result.warmup_time + result.sampling_time * discard / result.num_steps
    row.update(max_rhat=float(np.nanmax(rhat(x))), min_bulk_ess=float(ess(x, "bulk").min()),
               stuck_chains=int((~tail.any(1)).sum()), longest_rejection_run=int(longest_rejection_run(accepted).max()),
               max_sd_err=float(np.abs(ratio - 1).max()), worst_sd_coord=int(np.abs(ratio - 1).argmax()),
               worst_sd=float(sd[np.abs(ratio - 1).argmax()]), warmup_s=warmup_s,
               sampling_s=trimmed.sampling_time,
               ess_per_s_total=row["min_ess"] * result.num_chains / (warmup_s + trimmed.sampling_time)
               * trimmed.num_steps / 1000)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="australian")
    p.add_argument("--sampler", required=True, help="a file written by `entropy-mcmc train-sampler`")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", choices=("default", "zero"), default="default",
                   help="default: the target's default start (logistic regression: around its mode); zero: "
                        "N(0, 0.1^2 I), the default start before (the same draws, shifted)")
    p.add_argument("--out", default="results/learned_user_start")
    p.add_argument("--only", default=None, help="comma-separated labels to run (default all)")
    p.add_argument("--timing-repeats", type=int, default=0,
                   help="then time the share's cost: alternate mixture shares 0, 0.05 and 0.1 from the exact start "
                        "this many times (1000 draws each) and report the median sampling seconds of each")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = get_target(args.target)
    ref = load_reference(args.target)
    info = machine()
    print(f"benchmarks/learned_user_start.py {' '.join(sys.argv[1:])} | {info}", flush=True)

    def zero_start(seed):  # the draws run_chains' default start makes from `seed`, without the centre
        gen = torch.Generator().manual_seed(int(spawn_seeds(seed, 2)[0]))
        return (0.1 * torch.randn((CHAINS,) + tuple(target.event_shape), generator=gen, dtype=torch.float64)).float()

    start = zero_start(args.seed) if args.start == "zero" else None  # None: run_chains' default start

    def run(kernel, warmup, draws=DRAWS, init=None, **options):
        return run_chains(target, kernel, chains=CHAINS, num_warmup=warmup, num_draws=draws, seed=args.seed,
                          init=start if init is None else init, warn=False, **options)

    t0 = time.perf_counter()
    # from the zero start whatever --start says, so that the exact-start rows are the same for both
    posterior = run_chains(target, "mala", chains=CHAINS, num_warmup=1000, num_draws=1000, seed=args.seed + 1,
                           init=zero_start(args.seed + 1), warn=False).draws[:, -1].clone()
    print(f"posterior draws for the exact start: {time.perf_counter() - t0:.1f} s", flush=True)
    learned = dict(sampler=args.sampler)
    settings = [
        ("learned, no warmup, share 0 (README before)", lambda: run("learned", 0, mixture_share=0, **learned), 0),
        ("learned, 4000 learned steps discarded, share 0 (issue)",
         lambda: run("learned", 0, draws=4000 + DRAWS, mixture_share=0, **learned), 4000),
        ("handoff: 500 MALA warmup, share 0", lambda: run("learned", 500, mixture_share=0, **learned), 0),
        ("mixture: no warmup, share 0.05", lambda: run("learned", 0, **learned), 0),
        ("default: 500 MALA warmup, share 0.05", lambda: run("learned", 500, **learned), 0),
        ("default, 4000 MALA warmup, share 0.05", lambda: run("learned", 4000, **learned), 0),
        ("exact start: learned, share 0 (thesis)", lambda: run("learned", 0, init=posterior, mixture_share=0,
                                                               **learned), 0),
        ("exact start: learned, share 0.05", lambda: run("learned", 0, init=posterior, **learned), 0),
        ("exact start: learned, share 0.1", lambda: run("learned", 0, init=posterior, mixture_share=0.1,
                                                        **learned), 0),
        ("MALA (dense), 500 warmup", lambda: run("mala", 500), 0),
        ("HMC (10 steps, diag, jitter), 500 warmup", lambda: run("hmc", 500), 0),
    ]
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for label, go, discard in settings:
        if only and label not in only:
            continue
        t0 = time.perf_counter()
        row = figures(label, go(), target, ref, discard)
        rows.append(row)
        print(f"{label}: {time.perf_counter() - t0:.1f} s | R-hat {row['max_rhat']:.4f}, stuck {row['stuck_chains']}, "
              f"longest rejection run {row['longest_rejection_run']}, max |sd/ref - 1| {row['max_sd_err']:.3f} "
              f"(x[{row['worst_sd_coord']}] {row['worst_sd']:.4f}), ESS/5k {row['ess_per_5k']:.0f}, "
              f"ESS/s {row['ess_per_s']:.0f} (with warmup {row['ess_per_s_total']:.0f}), "
              f"min bulk ESS {row['min_bulk_ess']:.0f}, warmup {row['warmup_s']:.1f} s, "
              f"sampling {row['sampling_s']:.1f} s", flush=True)
    (out / f"{args.target}_{args.start}.json").write_text(
        json.dumps({"machine": info, "start": args.start, "rows": rows}, indent=1))
    cols = ["sampler", "max_rhat", "stuck_chains", "longest_rejection_run", "max_sd_err", "ess_per_5k", "ess_per_s",
            "ess_per_s_total", "min_bulk_ess", "warmup_s", "sampling_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    (out / f"{args.target}_{args.start}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.timing_repeats:
        times = {0.0: [], 0.05: [], 0.1: []}
        for _ in range(args.timing_repeats):  # alternated, so that the machine's load hits every share alike
            for share in times:
                times[share].append(run("learned", 0, draws=1000, init=posterior, mixture_share=share,
                                        **learned).sampling_time)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print("median sampling seconds per 1000 steps, exact start, by mixture share: "
              + ", ".join(f"{k:g}: {v:.2f} s ({v / med[0.0]:.2f}x)" for k, v in med.items()), flush=True)


if __name__ == "__main__":
    main()

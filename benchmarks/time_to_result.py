"""Time to result, whole processes side by side: `entropy-mcmc sample` (HMC, ChEES-HMC) against BlackJAX (HMC,
ChEES-HMC), and Pyro NUTS on request.

    .venv/bin/python benchmarks/time_to_result.py --repeats 3 [--systems ours-hmc,bj-chees] [--pyro] [--out results/ttr]

Each system runs as its own process (interpreter start, imports, compilation where
there is one, warmup, sampling, ArviZ summary and NetCDF output), alternating
systems within every repeat (A/B/A/B, the order reversed every other repeat) so that
machine load hits them alike. The wall time is measured around the child process
(what `/usr/bin/time` reports as elapsed), the min bulk ESS is parsed from the
child's output. Printed: min and median over repeats of each system's min-ESS per wall
second, and each ratio ours / peer, per repeat, min and median. A peer that is not
installed (the `peers` extra: jax, blackjax) is a skipped row with a note.

Ours run with their defaults (`--kernel hmc`: dense-or-diagonal mass matrix by `auto`, 4 leapfrog steps;
`--kernel chees-hmc`) unless `--leapfrog-steps` is given; BlackJAX HMC runs the idiom of its docs (per-chain
`window_adaptation`, then `lax.scan` over `hmc.step`) with `--blackjax-leapfrog-steps` (10), BlackJAX ChEES
`chees_adaptation` then `dynamic_hmc`. `--target australian|heart` runs another BLR dataset. Gradient
evaluations of the sampling phase (all chains) come from the peer's output or our NetCDF's `n_steps`, for min ESS
per gradient.

Defaults: German BLR, 256 chains, 500 warmup, 1000 draws, seed 0; Pyro NUTS with 1 chain, 1000 warmup + 2000 draws.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from entropy_mcmc.cli.common import nonneg_int, positive_int

ROOT = Path(__file__).resolve().parent.parent


def sampling_gradients(proc_stdout, netcdf):
    """Gradient evaluations of the sampling phase over all chains: a peer prints them; ours are the `n_steps`
    sample statistic of its NetCDF (NUTS, ChEES: per chain), else its `num_grad_evals` per chain times the chains
    (fixed-length HMC); None when none of these is there."""
    m = re.search(r"sampling gradient evaluations (\d+)", proc_stdout)
    if m:
        return int(m.group(1))
    if netcdf is None or not Path(netcdf).exists():
        return None
    import arviz as az

    stats = az.from_netcdf(netcdf).sample_stats
    if "n_steps" in stats:
        return int(stats["n_steps"].sum())
    per_chain = stats.attrs.get("num_grad_evals")
    return None if per_chain is None else int(per_chain) * stats.sizes["chain"]


def run(name, cmd, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{name} failed with exit code {proc.returncode}: {' '.join(cmd)}")
    m = re.search(r"min ESS bulk (\d+)", proc.stdout)
    if not m:
        raise SystemExit(f"{name}: no 'min ESS bulk' in its output")
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-3:]
    netcdf = cmd[cmd.index("--out") + 1] if "--out" in cmd else None
    grads = sampling_gradients(proc.stdout, netcdf)
    return {"system": name, "wall_s": wall, "sampling_gradients": grads,
            "ess_per_gradient": None if not grads else float(m.group(1)) / grads,
            "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime, "min_ess_bulk": float(m.group(1)),
            "ess_per_wall_s": float(m.group(1)) / wall, "load_before": load, "output_tail": tail,
            "command": " ".join(str(c) for c in cmd)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--target", default="german", help="BLR dataset: german, australian or heart")
    ap.add_argument("--chains", type=positive_int, default=256)
    ap.add_argument("--warmup", type=nonneg_int, default=500)
    ap.add_argument("--draws", type=positive_int, default=1000)
    ap.add_argument("--systems", default="ours-hmc,ours-chees,bj-hmc,bj-chees",
                    help="comma-separated, from ours-hmc, ours-chees, bj-hmc, bj-chees")
    ap.add_argument("--leapfrog-steps", type=positive_int, default=None,
                    help="ours-hmc's leapfrog steps (default: its own)")
    ap.add_argument("--blackjax-leapfrog-steps", type=positive_int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pyro", action="store_true", help="also run Pyro NUTS (1 chain, 1000 + 2000; ~1-2 min)")
    ap.add_argument("--pyro-warmup", type=int, default=1000)
    ap.add_argument("--pyro-draws", type=int, default=2000)
    ap.add_argument("--ours-extra", default="", help="extra arguments for entropy-mcmc sample, e.g. '--threads 1'")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                    help="another entropy-mcmc sample run with extra arguments, e.g. "
                         "'no-jitter=--step-size-jitter 0' (repeatable)")
    ap.add_argument("--blackjax-variant", action="append", default=[], metavar="NAME=ARGS",
                    help="another BlackJAX run with extra arguments, e.g. 'jitter=--step-size-jitter 0.5'")
    ap.add_argument("--out", default="results/ttr")
    args = ap.parse_args()

    out = Path(args.out).resolve()  # relative to the caller's folder; the children run in the repository
    out.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    common = ["--chains", str(args.chains), "--warmup", str(args.warmup), "--draws", str(args.draws),
              "--seed", str(args.seed)]
    steps = [] if args.leapfrog_steps is None else ["--leapfrog-steps", str(args.leapfrog_steps)]
    ours_base = [str(bindir / "entropy-mcmc"), "sample", "--target", args.target, "--kernel", "hmc", *common, *steps,
                 *args.ours_extra.split()]
    ours = ours_base + ["--out", str(out / "draws.nc")]
    chees = [str(bindir / "entropy-mcmc"), "sample", "--target", args.target, "--kernel", "chees-hmc", *common,
             *args.ours_extra.split(), "--out", str(out / "draws_chees.nc")]
    bj = [sys.executable, "benchmarks/peer_blackjax_process.py", "--dataset", args.target, *common, "--leapfrog-steps",
          str(args.blackjax_leapfrog_steps), "--out", str(out / "blackjax.nc")]
    bj_chees = [sys.executable, "benchmarks/peer_blackjax_process.py", "--dataset", args.target, "--algorithm",
                "chees", *common, "--out", str(out / "blackjax_chees.nc")]
    pyro = [sys.executable, "benchmarks/peer_pyro_process.py", "--warmup", str(args.pyro_warmup), "--draws",
            str(args.pyro_draws), "--seed", str(args.seed), "--out", str(out / "pyro.nc")]

    variants = []
    for v in args.variant:
        name, _, extra = v.partition("=")
        variants.append((f"entropy-mcmc HMC {name}",
                         ours_base + extra.split() + ["--out", str(out / f"draws_{name}.nc")]))
    for v in args.blackjax_variant:
        name, _, extra = v.partition("=")
        variants.append((f"blackjax HMC {name}", bj[:-2] + extra.split() + ["--out", str(out / f"bj_{name}.nc")]))
    systems = {"ours-hmc": ("entropy-mcmc HMC", ours), "ours-chees": ("entropy-mcmc ChEES", chees),
               "bj-hmc": ("blackjax HMC", bj), "bj-chees": ("blackjax ChEES", bj_chees)}
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in systems]
    if unknown:
        ap.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(systems)}")
    from entropy_mcmc.benchmarks.peers import blackjax_available

    if not blackjax_available() and any(s.startswith("bj-") for s in chosen):
        print("note: BlackJAX rows skipped: jax/blackjax not installed (pip install -e '.[peers]')")
        chosen = [s for s in chosen if not s.startswith("bj-")]
        variants = [v for v in variants if not v[0].startswith("blackjax")]
    runs = []
    for rep in range(args.repeats):
        order = [systems[s] for s in chosen if s.startswith("ours")] + variants
        order += [systems[s] for s in chosen if s.startswith("bj")]
        if rep % 2:
            order.reverse()
        if args.pyro and rep == 0:
            order.append(("pyro NUTS", pyro))
        for name, cmd in order:
            r = run(name, cmd)
            r["repeat"] = rep
            runs.append(r)
            print(f"[{rep}] {name:<28} wall {r['wall_s']:6.2f} s (user {r['user_s']:.1f}, sys {r['sys_s']:.1f}), "
                  f"min ESS {r['min_ess_bulk']:>8.0f}, ESS/s {r['ess_per_wall_s']:9.1f}, "
                  f"ESS/grad {r['ess_per_gradient'] or float('nan'):.4f}, load {r['load_before']:.2f}",
                  flush=True)

    def values(name, key):
        return [r[key] for r in runs if r["system"] == name]

    names = list(dict.fromkeys(r["system"] for r in runs))
    summary = {name: {k: statistics.median(values(name, k)) for k in ("wall_s", "min_ess_bulk", "ess_per_wall_s")}
               for name in names}
    for name in names:
        summary[name]["min_ess_per_wall_s"] = min(values(name, "ess_per_wall_s"))
    ratios, per_rep = {}, {}
    for mine in (n for n in names if n.startswith("entropy-mcmc")):
        for peer in (n for n in names if not n.startswith("entropy-mcmc")):
            key = f"{mine} / {peer}"
            per_rep[key] = [a["ess_per_wall_s"] / b["ess_per_wall_s"] for a in runs if a["system"] == mine
                            for b in runs if b["system"] == peer and b["repeat"] == a["repeat"]]
            if per_rep[key]:
                ratios[key] = {"min": min(per_rep[key]), "median": statistics.median(per_rep[key])}
    print("\nmin-ESS per wall second over repeats (min / median):")
    for name, s in summary.items():
        print(f"  {name:<28} {s['min_ess_per_wall_s']:9.1f} / {s['ess_per_wall_s']:9.1f}   "
              f"(median wall {s['wall_s']:6.2f} s, min ESS {s['min_ess_bulk']:8.0f})")
    for key, ratio in ratios.items():
        reps = ", ".join(f"{x:.2f}" for x in per_rep[key])
        print(f"  {key}: min {ratio['min']:.2f}, median {ratio['median']:.2f} (per repeat: {reps})")

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    record = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu_model": cpu,
              "cpus": os.cpu_count(), "argv": sys.argv, "runs": runs, "medians": summary, "ratios": ratios,
              "ratios_per_repeat": per_rep}
    (out / "ttr.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / 'ttr.json'}")


if __name__ == "__main__":
    main()

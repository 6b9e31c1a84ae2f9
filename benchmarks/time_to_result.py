"""Time to result, whole processes side by side: `entropy-mcmc sample` HMC vs BlackJAX HMC (and Pyro NUTS).

    .venv/bin/python benchmarks/time_to_result.py --repeats 3 [--pyro] [--out results/ttr]

Each system runs as its own process (interpreter start, imports, compilation where
there is one, warmup, sampling, ArviZ summary and NetCDF output), alternating
systems within every repeat so that machine load hits them alike. The wall time is
measured around the child process (what `/usr/bin/time` reports as elapsed), the
min bulk ESS is parsed from the child's output, and min-ESS per wall second is
compared as ratios ours / peer, per repeat and as the median over repeats.

`--target australian|heart` runs another BLR dataset. Gradient evaluations of the sampling phase (all chains)
come from the peer's output or our NetCDF's `n_steps`, for min ESS per gradient.

Defaults are the performance goal of issue 2: German BLR, 256 chains, 500 warmup,
1000 draws, 10 leapfrog steps, seed 0; Pyro NUTS with 1 chain, 1000 warmup + 2000 draws.
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
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target", default="german", help="BLR dataset: german, australian or heart")
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--leapfrog-steps", type=int, default=10)
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

    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    common = ["--chains", str(args.chains), "--warmup", str(args.warmup), "--draws", str(args.draws),
              "--seed", str(args.seed)]
    ours_base = [str(bindir / "entropy-mcmc"), "sample", "--target", args.target, "--kernel", "hmc", *common,
                 "--leapfrog-steps", str(args.leapfrog_steps), *args.ours_extra.split()]
    ours = ours_base + ["--out", str(out / "draws.nc")]
    bj = [sys.executable, "benchmarks/peer_blackjax_process.py", "--dataset", args.target, *common, "--leapfrog-steps",
          str(args.leapfrog_steps), "--out", str(out / "blackjax.nc")]
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
    runs = []
    for rep in range(args.repeats):
        order = [("entropy-mcmc HMC", ours), *variants, ("blackjax HMC", bj)]
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

    def med(name, key):
        vals = [r[key] for r in runs if r["system"] == name]
        return statistics.median(vals) if vals else float("nan")

    summary = {name: {k: med(name, k) for k in ("wall_s", "min_ess_bulk", "ess_per_wall_s")}
               for name in dict.fromkeys(r["system"] for r in runs)}
    ratios = {}
    per_rep = {}
    for mine in summary:
        if not mine.startswith("entropy-mcmc"):
            continue
        for peer in summary:
            if peer.startswith("entropy-mcmc"):
                continue
            key = f"{mine} / {peer}"
            ratios[key] = summary[mine]["ess_per_wall_s"] / summary[peer]["ess_per_wall_s"]
            per_rep[key] = [
                next(r for r in runs if r["system"] == mine and r["repeat"] == rep)["ess_per_wall_s"]
                / r2["ess_per_wall_s"] for rep in range(args.repeats)
                for r2 in runs if r2["system"] == peer and r2["repeat"] == rep]
    print("\nmedians over repeats:")
    for name, s in summary.items():
        print(f"  {name:<28} wall {s['wall_s']:6.2f} s, min ESS {s['min_ess_bulk']:8.0f}, "
              f"min ESS per wall second {s['ess_per_wall_s']:9.1f}")
    for key, ratio in ratios.items():
        reps = ", ".join(f"{x:.2f}" for x in per_rep[key])
        print(f"  {key}: {ratio:.2f} (per repeat: {reps})")

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    record = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu_model": cpu,
              "cpus": os.cpu_count(), "argv": sys.argv, "runs": runs, "medians": summary, "ratios": ratios,
              "ratios_per_repeat": per_rep}
    (out / "ttr.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / 'ttr.json'}")


if __name__ == "__main__":
    main()

"""Chain scaling of `entropy-mcmc sample` (HMC at its defaults) on a BLR posterior, whole processes, beside
BlackJAX HMC when it is installed, and the matrix-product floor of a gradient.

    .venv/bin/python benchmarks/chain_scaling.py [--chains 64 256 1024 4096 16384] [--warmup 200 --draws 300]
        [--no-blackjax] [--out results/chain_scaling]

For each chain count, each system runs once as its own process (ours first, then BlackJAX), writing its NetCDF
file. Columns: wall time of the process; sampling time; milliseconds per gradient of the sampling phase (sampling
time over the gradient evaluations of one chain: every gradient is one batched call over all chains); the
matrix-product floor of one gradient at that chain count (the two products A W^T and A^T S no BLR gradient avoids,
best of 7 rounds, measured in this process on one torch thread, as `sample` runs by default; XLA runs BlackJAX
on every core); their ratio; and the peak resident memory of the process (`wait4`'s ru_maxrss). Ours print their
sampling time and the NetCDF holds the gradient count; BlackJAX's process prints both.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from entropy_mcmc.benchmarks.peers import blackjax_available
from entropy_mcmc.cli.common import nonneg_int, positive_int
from entropy_mcmc.benchmarks.suite import _machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(cmd):
    """(wall seconds, peak RSS in MiB, stdout) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def floor_ms(target, chains):
    from blr_gradient_floor import best_ms, two_products

    return best_ms(two_products(target, chains), time.perf_counter, n=3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="german")
    ap.add_argument("--chains", type=positive_int, nargs="+", default=[64, 256, 1024, 4096, 16384])
    ap.add_argument("--warmup", type=nonneg_int, default=200)
    ap.add_argument("--draws", type=positive_int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blackjax-leapfrog-steps", type=positive_int, default=10)
    ap.add_argument("--no-blackjax", action="store_true")
    ap.add_argument("--out", default="results/chain_scaling")
    args = ap.parse_args()
    out = Path(args.out).resolve()  # relative to the caller's folder; the children run in the repository
    out.mkdir(parents=True, exist_ok=True)
    blackjax = not args.no_blackjax and blackjax_available()
    if not args.no_blackjax and not blackjax:
        print("note: BlackJAX columns skipped: jax/blackjax not installed (pip install -e '.[peers]')")

    import arviz as az
    import torch

    from entropy_mcmc.targets import get_target

    torch.set_num_threads(1)
    target = get_target(args.target)
    bindir = Path(sys.executable).parent
    common = ["--chains", None, "--warmup", str(args.warmup), "--draws", str(args.draws), "--seed", str(args.seed)]
    rows = []
    print("| chains | ours wall (s) | sampling (s) | ms / gradient | floor (ms) | ratio | peak RSS (MiB) |"
          + (" BlackJAX HMC wall (s) | ms / gradient | peak RSS (MiB) |" if blackjax else ""))
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: | ---: |" if blackjax else ""))
    for chains in args.chains:
        common[1] = str(chains)
        nc = out / f"ours_{chains}.nc"
        wall, rss, text = run([str(bindir / "entropy-mcmc"), "sample", "--target", args.target, "--kernel", "hmc",
                               *common, "--no-progress", "--out", str(nc)])
        sampling = float(re.search(r"sampling ([\d.]+) s", text).group(1))
        grads = int(az.from_netcdf(nc).sample_stats.attrs["num_grad_evals"])  # sampling phase, per chain
        nc.unlink()
        row = {"chains": chains, "wall_s": wall, "sampling_s": sampling, "gradients": grads,
               "ms_per_gradient": 1e3 * sampling / grads, "floor_ms": floor_ms(target, chains), "peak_rss_mb": rss}
        row["ratio_to_floor"] = row["ms_per_gradient"] / row["floor_ms"]
        line = (f"| {chains} | {wall:.1f} | {sampling:.2f} | {row['ms_per_gradient']:.2f} | {row['floor_ms']:.2f} "
                f"| {row['ratio_to_floor']:.2f} | {rss:.0f} |")
        if blackjax:
            bj_nc = out / f"blackjax_{chains}.nc"
            bwall, brss, btext = run([sys.executable, "benchmarks/peer_blackjax_process.py", "--dataset", args.target,
                                      *common, "--leapfrog-steps", str(args.blackjax_leapfrog_steps), "--no-summary",
                                      "--out", str(bj_nc)])
            bj_nc.unlink(missing_ok=True)
            bsampling = float(re.search(r"sampling ([\d.]+) s", btext).group(1))
            bgrads = int(re.search(r"sampling gradient evaluations (\d+)", btext).group(1)) // chains
            row.update(blackjax_wall_s=bwall, blackjax_sampling_s=bsampling,
                       blackjax_ms_per_gradient=1e3 * bsampling / bgrads, blackjax_peak_rss_mb=brss)
            line += f" {bwall:.1f} | {row['blackjax_ms_per_gradient']:.2f} | {brss:.0f} |"
        rows.append(row)
        print(line, flush=True)
    record = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": _machine(),
              "argv": sys.argv, "rows": rows}
    (out / "chain_scaling.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / 'chain_scaling.json'}")


if __name__ == "__main__":
    main()

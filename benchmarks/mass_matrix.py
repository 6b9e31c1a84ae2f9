"""Mass matrix, path length and step-size target by measurement (issue 25 item 2): whole `entropy-mcmc sample`
processes on one target, one per configuration, interleaved within every repeat (order reversed on odd repeats,
seed = repeat), each reporting min bulk ESS per sampling gradient (all chains; NUTS and ChEES count their own
leapfrog steps, `n_steps`), per second of sampling and per wall second of the whole process.

    .venv/bin/python benchmarks/mass_matrix.py --repeats 2 --out results/mass_matrix \\
        --config "hmc diag=--kernel hmc --mass diag" --config "hmc dense=--kernel hmc --mass dense"

Without --config the configurations of BENCHMARKS.md "Dense mass matrices" run. Writes `mass_matrix.json` and
prints a markdown table of medians over repeats.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_to_result import ROOT, sampling_gradients  # noqa: E402

CONFIGS = [f"{k} {m}=--kernel {k} --mass {m}" for k in ("hmc", "nuts", "chees-hmc") for m in ("diag", "dense")] + [
    "hmc dense L5=--kernel hmc --mass dense --leapfrog-steps 5",
    "hmc dense L3=--kernel hmc --mass dense --leapfrog-steps 3",
    "hmc dense accept 0.65=--kernel hmc --mass dense --target-accept 0.65",
    "hmc dense accept 0.9=--kernel hmc --mass dense --target-accept 0.9",
    "chees-hmc dense accept 0.8=--kernel chees-hmc --mass dense --target-accept 0.8"]
PATTERNS = {"min_ess_bulk": r"min ESS bulk (\d+)", "max_rhat": r"max R-hat ([\d.]+)",
            "ess_per_s_sampling": r"min ESS/s ([\d.]+) \(sampling\)", "sampling_s": r"sampling ([\d.]+) s,",
            "warmup_s": r"warmup ([\d.]+) s,", "accept": r"acceptance ([\d.]+)", "step_size": r"step size ([\d.e-]+)",
            "divergences": r"divergences (\d+)"}


def run(name: str, cmd, rep: int):
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    row = {"config": name, "repeat": rep, "wall_s": wall, "load_before": load, "command": " ".join(cmd)}
    for key, pattern in PATTERNS.items():
        m = re.search(pattern, proc.stdout)
        row[key] = float(m.group(1)) if m else None
    m = re.search(r"mass matrix: (.*)", proc.stdout)
    row["mass_matrix"] = m.group(1) if m else None
    grads = sampling_gradients(proc.stdout, cmd[cmd.index("--out") + 1])
    row.update(sampling_gradients=grads, ess_per_grad=row["min_ess_bulk"] / grads if grads else None,
               ess_per_wall_s=row["min_ess_bulk"] / wall)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", default=[], metavar="NAME=ARGS",
                    help="a configuration: its name and the extra arguments of entropy-mcmc sample (repeatable)")
    ap.add_argument("--target", default="german")
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="results/mass_matrix")
    args = ap.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).parent / "entropy-mcmc")
    configs = [c.partition("=")[::2] for c in (args.config or CONFIGS)]  # a name holds no "="
    rows = []
    for rep in range(args.repeats):
        for name, extra in (configs if rep % 2 == 0 else configs[::-1]):
            cmd = [exe, "sample", "--target", args.target, "--chains", str(args.chains), "--warmup",
                   str(args.warmup), "--draws", str(args.draws), "--seed", str(rep), "--no-progress", "--no-summary",
                   *extra.split(), "--out", str(out / "draws.nc")]
            r = run(name, cmd, rep)
            rows.append(r)
            print(f"[{rep}] {name:<28} wall {r['wall_s']:6.1f} s, min ESS {r['min_ess_bulk']:8.0f}, "
                  f"ESS/grad {r['ess_per_grad'] or float('nan'):.4f}, ESS/s {r['ess_per_s_sampling']:8.0f} "
                  f"(sampling) {r['ess_per_wall_s']:7.0f} (wall), R-hat {r['max_rhat']}, step {r['step_size']}, "
                  f"accept {r['accept']}, load {r['load_before']:.1f}", flush=True)
    print("\n| configuration | min ESS | ESS / gradient | ESS / s (sampling) | ESS / s (whole process) | max R-hat "
          "| step size | acceptance | wall (s) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, _ in configs:
        mine = [r for r in rows if r["config"] == name]

        def med(key):
            return statistics.median(r[key] for r in mine)

        print(f"| {name} | {med('min_ess_bulk'):,.0f} | {med('ess_per_grad'):.4f} | {med('ess_per_s_sampling'):,.0f} "
              f"| {med('ess_per_wall_s'):,.0f} | {max(r['max_rhat'] for r in mine):.3f} | {med('step_size'):.3g} "
              f"| {med('accept'):.3f} | {med('wall_s'):.1f} |")
    record = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "argv": sys.argv,
              "cpus": os.cpu_count(), "rows": rows}
    (out / "mass_matrix.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / 'mass_matrix.json'}")


if __name__ == "__main__":
    main()

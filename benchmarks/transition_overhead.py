"""Per-transition overhead on small posteriordb models: the code of an older revision against the working tree,
whole processes, interleaved old/new, several repeats.

    .venv/bin/python benchmarks/transition_overhead.py REVISION --db PATH [--posteriors A,B] [--repeats 3]
        [--chains 4 --warmup 200 --draws 800 --num-steps 4] [--out results/transition_overhead]

Each child runs `entropy_mcmc.MCMC(Kernel("hmc", model=..., adapt_mass="diag", num_steps=L))` with the package of
one revision first on its path, so both sides run the same algorithm with the same number of gradients per
transition (L; the count does not depend on the step size), and times every call into the model's target
(`PyroTarget.energy`, `energy_and_grad`, `grad`) during the run. A transition's figures are those of a
sampling-phase transition: the difference between a run of D and one of 3D draws (same warmup, same seed) over 2D,
after a first small run that takes the one-off costs (imports, first traces). So the set-up (tracing the model,
checking its vectorization) and the warmup drop out, and what a draw costs afterwards (recording, the end-of-run
diagnostics) stays in. Reported: milliseconds per transition, per call into the target, and the overhead of one
transition outside the target (the leapfrog's arithmetic, the MH step, recording, the Python between). One torch
thread. Prints min and median of each over the repeats and the ratio old/new of the overhead.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTERIORS = "kidiq-kidscore_momhsiq,arma-arma11,earnings-logearn_interaction_z"


def child(args) -> None:
    """One measurement with whatever `entropy_mcmc` is first on the path; one JSON line on stdout."""
    import warnings

    import torch
    from entropy_mcmc.benchmarks.posteriordb.reference import load_posterior
    from entropy_mcmc.infer import MCMC, Kernel
    from entropy_mcmc.pyro.target import PyroTarget

    torch.set_num_threads(1)
    inside = {"seconds": 0.0, "calls": 0, "depth": 0}

    def timed(method):
        def wrapper(self, x):  # the outermost call of the target's energy, energy_and_grad or grad counts
            inside["depth"] += 1
            t = time.perf_counter()
            try:
                return method(self, x)
            finally:
                inside["depth"] -= 1
                if not inside["depth"]:
                    inside["seconds"] += time.perf_counter() - t
                    inside["calls"] += 1
        return wrapper

    for name in ("energy", "energy_and_grad", "grad"):
        setattr(PyroTarget, name, timed(getattr(PyroTarget, name)))
    posterior = load_posterior(args.db, args.posterior)

    def run(draws):
        mcmc = MCMC(Kernel("hmc", model=posterior.port.model, adapt_mass="diag", num_steps=args.num_steps),
                    num_warmup=args.warmup, num_samples=draws, num_chains=args.chains, progress_bar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before = dict(inside)
            t0 = time.perf_counter()
            mcmc.run(0, **posterior.kwargs)
            return (time.perf_counter() - t0, inside["seconds"] - before["seconds"],
                    inside["calls"] - before["calls"])

    run(10)  # one-off costs (imports, first traces) fall here
    short, long = run(args.draws), run(3 * args.draws)
    transitions = 2 * args.draws
    total, in_target, calls = (b - a for a, b in zip(short, long))
    print(json.dumps({"ms_transition": 1e3 * total / transitions, "ms_gradient": 1e3 * in_target / calls,
                      "gradients_per_transition": calls / transitions,
                      "ms_overhead": 1e3 * (total - in_target) / transitions}))


def main(argv=None) -> None:
    from entropy_mcmc.cli.common import nonneg_int, positive_int

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revision", nargs="?", help="the older revision (git rev)")
    ap.add_argument("--db", required=True, help="a posterior database folder (posteriordb's layout)")
    ap.add_argument("--posteriors", default=DEFAULT_POSTERIORS)
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--chains", type=positive_int, default=4)
    ap.add_argument("--warmup", type=nonneg_int, default=200)
    ap.add_argument("--draws", type=positive_int, default=800)
    ap.add_argument("--num-steps", type=positive_int, default=4)
    ap.add_argument("--out", default=None, help="folder for overhead.json and overhead.md")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--posterior", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    if not args.revision:
        ap.error("give the older revision to compare with")
    if not Path(args.db).is_dir():
        ap.error(f"--db {args.db}: no such folder")
    rev = subprocess.run(["git", "rev-parse", "--short", args.revision], cwd=ROOT, capture_output=True, text=True)
    if rev.returncode:
        ap.error(f"{args.revision}: not a revision of this repository")
    names = [n for n in args.posteriors.split(",") if n]
    settings = ["--db", str(Path(args.db).resolve()), "--chains", str(args.chains), "--warmup", str(args.warmup),
                "--draws", str(args.draws), "--num-steps", str(args.num_steps)]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.revision], cwd=ROOT, check=True)
        try:
            runs = measure(names, settings, args.repeats, {"old": old, "new": ROOT})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    rows = summarize(runs, f"{rev.stdout.strip()} (old)")
    table = report(rows, args)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "overhead.json").write_text(json.dumps({"revision": rev.stdout.strip(), "rows": rows, "runs": runs,
                                                      "argv": sys.argv[1:]}, indent=1))
        (out / "overhead.md").write_text(table + "\n")


def measure(names, settings, repeats, trees):
    """{posterior: {side: [child results]}}, sides alternating within each repeat."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {n: {side: [] for side in trees} for n in names}
    for r in range(repeats):
        for name in names:
            for side, tree in trees.items():
                proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--posterior", name,
                                       *settings], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                                      capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"{side} on {name} failed:\n{proc.stderr[-3000:]}")
                runs[name][side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"repeat {r + 1} {name} {side}: {runs[name][side][-1]}", file=sys.stderr, flush=True)
    return runs


def summarize(runs, old_label):
    """One row per posterior and code: min and median over the repeats, and the old/new ratio of the overhead."""
    rows = []
    for name, sides in runs.items():
        ratio = (statistics.median(r["ms_overhead"] for r in sides["old"])
                 / statistics.median(r["ms_overhead"] for r in sides["new"]))
        for side, label in (("old", old_label), ("new", "working tree")):
            row = {"posterior": name, "code": label}
            for key in ("ms_transition", "ms_gradient", "ms_overhead"):
                values = [r[key] for r in sides[side]]
                row[f"{key}_min"], row[f"{key}_median"] = min(values), statistics.median(values)
            row["overhead_old_over_new"] = ratio if side == "new" else None
            rows.append(row)
    return rows


def report(rows, args) -> str:
    lines = [f"{args.chains} chains, HMC with {args.num_steps} leapfrog steps and a diagonal mass matrix, "
             f"{args.warmup} warmup + {args.draws} draws, {args.repeats} repeats; ms as min / median",
             "", "| posterior | code | per transition | per target call | overhead per transition | overhead old/new |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cells = [f"{r[k + '_min']:.3f} / {r[k + '_median']:.3f}" for k in ("ms_transition", "ms_gradient",
                                                                           "ms_overhead")]
        ratio = r["overhead_old_over_new"]
        lines.append(f"| {r['posterior']} | {r['code']} | {' | '.join(cells)} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""`entropy-mcmc bench --suite unseen`: `train-ebm` and `sample-ebm` at their defaults, as a user runs them, on
densities drawn afresh (`unseen.make_density`), scored against exact draws (`unseen.score`).

For each density (one per kind listed, its seed derived from the run's seed: a fresh one from the OS unless given,
printed so that `--seed` reruns it), the training points go to `DIR/<density>/data.npy`; then for each
configuration (`mdsm`, ..., `ml-<kernel>`) one `entropy-mcmc train-ebm --data data.npy --loss ...` process and one
`entropy-mcmc sample-ebm --model ...` process, with no option beyond files, seeds and the number of samples (quick:
a small training budget through train-ebm's own flags). Beside them an `exact` row scores a fresh exact sample: what
a perfect sampler reaches at this size. Writes `unseen.json` (seeds, commands, settings, machine, rows),
`unseen.csv`, `unseen.md` and a scatter per run (`DIR/<density>/<config>.png`, exact draws beside the model's,
coloured by mode, grey outside every mode).
"""
from __future__ import annotations

import datetime
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .unseen import GOALS, KINDS, Density, make_density, score, two_sample_baseline

__all__ = ["run_suite", "SETTINGS", "configurations", "reference_and_baseline"]

# training points, samples scored, seeds of the two-sample baseline, extra train-ebm and sample-ebm flags
SETTINGS = {
    "full": {"points": 10000, "samples": 2000, "baseline_seeds": 10, "train": [], "sample": []},
    "quick": {"points": 2000, "samples": 500, "baseline_seeds": 3,
              "train": ["--steps", "100", "--time-budget", "10", "--log-every", "25"], "sample": ["--steps", "100"]},
}
GOALS_TEXT = (f"MMD <= {GOALS['mmd_ratio']:g}x the two-sample MMD, >= {GOALS['in_modes']:.0%} of samples in modes, "
              f"every mode's share within {GOALS['share_error']:.0%} of its weight")
COLUMNS = ("density", "config", "passed", "mmd_ratio", "in_modes", "share_error", "p_value", "shares", "weights",
           "nonfinite", "train_s", "sample_s", "stopped", "error")


def configurations(losses: Sequence[str], kernels: Sequence[str]) -> List[Dict[str, Optional[str]]]:
    """One configuration per score-matching loss, and one per kernel for `ml`."""
    out = []
    for loss in losses:
        for kernel in (kernels if loss == "ml" else [None]):
            out.append({"label": loss if kernel is None else f"ml-{kernel}", "loss": loss, "kernel": kernel})
    return out


def reference_and_baseline(density: Density, samples: int, baseline_seeds: int):
    """The exact draws a run's samples are scored against, and the two-sample MMD baseline, as the suite draws them
    from the density's seed."""
    reference = density.sample(samples, np.random.default_rng([density.seed, 1]))
    baseline = two_sample_baseline(density, samples, [[density.seed, 2, j] for j in range(baseline_seeds)])
    return reference, baseline


def _cli(args: List[str], log) -> float:
    """Run `entropy-mcmc ARGS` as its own process, its output appended to `log`; its seconds."""
    log.write(f"$ entropy-mcmc {' '.join(args)}\n")
    log.flush()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "entropy_mcmc.cli", *args], stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"entropy-mcmc {args[0]} exited with status {done.returncode}")
    return time.perf_counter() - t0


def _last_line(path: Path, prefix: str) -> str:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and ln.startswith(prefix)]
    return lines[-1] if lines else ""


def _scatter(density: Density, exact: np.ndarray, samples: np.ndarray, title: str, path: Path) -> None:
    import matplotlib
    from matplotlib.figure import Figure

    lo, hi = np.percentile(exact, 0.5, axis=0), np.percentile(exact, 99.5, axis=0)
    lo, hi = lo - 0.15 * (hi - lo), hi + 0.15 * (hi - lo)
    fig = Figure(figsize=(10, 5))
    for i, (name, pts) in enumerate((("exact draws", exact), ("model samples", samples))):
        ax = fig.add_subplot(1, 2, i + 1)
        mode = density.mode_of(pts)
        shown = np.isfinite(pts).all(-1) & (pts >= lo).all(-1) & (pts <= hi).all(-1)
        colors = np.tile([0.6, 0.6, 0.6, 1.0], (len(pts), 1))  # grey: outside every mode
        colors[mode >= 0] = matplotlib.colormaps["tab10"](mode[mode >= 0] % 10)
        ax.scatter(pts[shown, 0], pts[shown, 1], s=3, c=colors[shown], alpha=0.6, linewidths=0)
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]),
               title=f"{name} ({int((~shown).sum())} of {len(pts)} outside the view)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _row(density: Density, label: str, scores: Dict[str, object]) -> Dict[str, object]:
    return {"density": density.name, "config": label, "passed": scores["passed"], "mmd_ratio": scores["mmd_ratio"],
            "in_modes": scores["in_modes"], "share_error": scores["share_error"], "p_value": scores["p_value"],
            "shares": "/".join(f"{s:.3f}" for s in scores["shares"]),
            "weights": "/".join(f"{w:.3f}" for w in density.weights), "nonfinite": scores["nonfinite"],
            "mmd2": scores["mmd2"], "baseline": scores["baseline"]}


def _print(row: Dict[str, object]) -> None:
    if row.get("error"):
        print(f"  {row['config']:<11} FAILED TO RUN: {row['error']}", flush=True)
        return
    print(f"  {row['config']:<11} {'pass' if row['passed'] else 'FAIL'}: MMD {row['mmd_ratio']:.2f}x the two-sample "
          f"MMD, {row['in_modes']:.1%} in modes, shares {row['shares']} (weights {row['weights']}, worst "
          f"{row['share_error']:.0%} off, chi-square p {row['p_value']:.2g})"
          + (f"; train {row['train_s']:.0f} s, sample {row['sample_s']:.0f} s" if "train_s" in row else ""),
          flush=True)


def run_suite(kinds: Sequence[str] = KINDS, losses: Sequence[str] = ("mdsm", "ml"),
              kernels: Sequence[str] = ("mala", "hmc", "learned"), seed: Optional[int] = None, quick: bool = False,
              out_dir: str = "results/unseen"):
    """Run the suite (see the module docstring); returns the table as a pandas DataFrame."""
    import pandas as pd

    from .suite import _machine, _markdown

    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown density kind {kind!r}; expected some of {', '.join(KINDS)}")
    mode = "quick" if quick else "full"
    s = SETTINGS[mode]
    seed = secrets.randbelow(2 ** 32) if seed is None else int(seed)
    seeds = [int(v) for v in np.random.SeedSequence(seed).generate_state(len(kinds))]
    densities = [make_density(k, v) for k, v in zip(kinds, seeds)]
    configs = configurations(losses, kernels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    started = time.perf_counter()
    print(f"entropy-mcmc bench --suite unseen ({mode}): seed {seed} (rerun with --seed {seed}); "
          f"{len(densities)} densities x {len(configs)} configurations ({', '.join(c['label'] for c in configs)}); "
          f"{s['points']} training points, {s['samples']} samples scored; {machine.get('cpu_model', '?')}, "
          f"{machine.get('cpus')} CPUs", flush=True)
    rows: List[Dict[str, object]] = []
    commands: Dict[str, List[str]] = {}

    def write():
        """The tables so far (rewritten after each run, so that a long run shows its progress)."""
        table = pd.DataFrame(rows).reindex(columns=list(COLUMNS) + ["mmd2", "baseline"])
        elapsed = time.perf_counter() - started
        when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        table.to_csv(out / "unseen.csv", index=False)
        md = [f"# entropy-mcmc bench --suite unseen ({mode}), seed {seed}", "",
              f"{when}; {machine.get('cpu_model', '?')}, {machine.get('cpus')} CPUs; {elapsed:.0f} s in all. Goals: "
              f"{GOALS_TEXT}.", "", *[f"- {d.describe()}" for d in densities], "",
              _markdown(table.drop(columns=["mmd2"])), ""]
        (out / "unseen.md").write_text("\n".join(md) + "\n")
        record = {"mode": mode, "date": when, "seed": seed, "densities": [d.describe() for d in densities],
                  "goals": GOALS, "settings": s, "commands": commands, "elapsed_s": elapsed, "machine": machine,
                  "rows": table.to_dict(orient="records")}
        (out / "unseen.json").write_text(json.dumps(record, indent=1, default=float))
        return table

    def add(row):
        rows.append(row)
        _print(row)
        write()

    for d in densities:
        print(d.describe(), flush=True)
        folder = out / d.name
        folder.mkdir(exist_ok=True)
        data = folder / "data.npy"
        np.save(data, d.sample(s["points"], np.random.default_rng([d.seed, 0])))
        reference, baseline = reference_and_baseline(d, s["samples"], s["baseline_seeds"])
        exact = d.sample(s["samples"], np.random.default_rng([d.seed, 3]))
        add(_row(d, "exact", score(d, exact, reference, baseline)))
        for c in configs:
            model, samples, log = (folder / f"{c['label']}{ext}" for ext in (".pt", ".npz", ".log"))
            kernel = ["--kernel", c["kernel"]] if c["kernel"] else []
            train = ["train-ebm", "--data", str(data), "--loss", c["loss"], *kernel, "--seed", str(d.seed),
                     "--out", str(model), "--no-progress", *s["train"]]
            sample = ["sample-ebm", "--model", str(model), "--num", str(s["samples"]), "--seed", str(d.seed),
                      "--out", str(samples), "--no-progress", *s["sample"]]
            commands[f"{d.name} {c['label']}"] = [" ".join(["entropy-mcmc", *cmd]) for cmd in (train, sample)]
            timing: Dict[str, object] = {}
            try:
                with open(log, "w") as f:
                    timing["train_s"] = _cli(train, f)
                    timing["sample_s"] = _cli(sample, f)
            except RuntimeError as err:
                add({"density": d.name, "config": c["label"], "passed": False,
                     "error": f"{err}; see {log}: {_last_line(log, '')}", **timing})
                continue
            x = np.load(samples)["samples"].astype(np.float64)
            scores = score(d, x, reference, baseline)
            _scatter(d, exact, x, f"{d.describe()}\n{c['label']}: MMD {scores['mmd_ratio']:.2f}x the two-sample "
                     f"MMD, {scores['in_modes']:.1%} in modes, worst share {scores['share_error']:.0%} off",
                     folder / f"{c['label']}.png")
            add({**_row(d, c["label"], scores), **timing,
                 "stopped": _last_line(log, "stopped at update").removeprefix("stopped at update ")})

    table = write()
    ran = table[table["config"] != "exact"]
    print(f"\n{int(ran['passed'].sum())} of {len(ran)} runs meet every goal ({GOALS_TEXT}); wrote {out}/unseen.csv, "
          f"unseen.md, unseen.json and a scatter per run ({time.perf_counter() - started:.0f} s); rerun with --seed "
          f"{seed}", flush=True)
    return table

"""Named experiments: the suites of `entropy-mcmc bench` and the scripts of the repository's `benchmarks/` folder
as entries of one runner, with one argument convention and one output layout.

    entropy-mcmc bench --list                      # every experiment with its expected time on the dev machine
    entropy-mcmc bench --experiment NAME [--seed S] [--quick] [--out DIR] [the experiment's own options]
    entropy-mcmc bench --report                    # the results report from every results/*/result.json

An experiment runs as a child process, the command a person would type: a suite as `python -m entropy_mcmc.cli
bench --suite ...` (its options and checks live in the command), a script as `python benchmarks/NAME.py`. The
runner hands it the shared options: --seed (default: the experiment's own default, 0 for most), --quick (its small
settings, where it has some) and --out (default results/NAME/); the options after NAME go to it unchanged. Then
`result.json` in the output folder records the command that regenerates the run, the child command (a script by
its path in the repository), the date, the machine, the git commit, the wall time, the tables (the CSV and JSON
files the run wrote, as rows) and the figures (its PNG files); files left in the folder by an earlier run are not
counted. Scripts run from a source checkout: an installed package holds only the suites.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import glob
import json
import math
import os
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]  # the source checkout, with benchmarks/ beside the package
MIN_ESS = 400  # bulk ESS below this, in a row without a verdict of its own, is not converged (Vehtari et al. 2021)


@dataclass(frozen=True)
class Experiment:
    """One named experiment.

    `command`: the child's arguments after the Python executable, a script path relative to the repository root
    or `-m MODULE ...`. `tables`: glob patterns, relative to the output folder, of the files that hold its tables
    (CSV, or JSON: a list of rows, an object with `rows`, an object of rows; `FILE.json:KEY` reads one entry of a
    JSON object). `quick`: the arguments of its small settings (None: it has none). `seed`: its default seed (None:
    it takes no --seed). `out_file`: the child's --out names this file in the output folder, not the folder."""

    name: str
    description: str
    expected: str
    command: Tuple[str, ...]
    tables: Tuple[str, ...]
    quick: Optional[Tuple[str, ...]] = ("--quick",)
    seed: Optional[int] = 0
    out_file: Optional[str] = None
    min_ess: float = MIN_ESS


def _bench(*args: str) -> Tuple[str, ...]:
    return ("-m", "entropy_mcmc.cli", "bench", *args)


EXPERIMENTS: Dict[str, Experiment] = {e.name: e for e in (
    Experiment("standard", "RWM, MALA and HMC on the six standard targets; Pyro's NUTS and BlackJAX's HMC and NUTS "
               "on German BLR beside them (options: those of entropy-mcmc bench)",
               "5 min (--quick 100 s)", _bench("--suite", "standard"), ("bench.csv", "ratios.csv")),
    Experiment("demo", "the first run (make demo): NUTS, ChEES-HMC, HMC and MALA on German BLR, RWM as the "
               "labelled baseline, the peers beside them", "2 min", _bench("--demo"), ("bench.csv", "ratios.csv"),
               quick=None),
    Experiment("posteriordb", "NUTS and ChEES through entropy_mcmc.MCMC and Pyro's NUTS on posteriordb's "
               "posteriors, scored against the reference draws (needs --db PATH)",
               "--quick: 1-15 min per posterior", _bench("--suite", "posteriordb"), ("posteriordb.csv",)),
    Experiment("unseen", "train-ebm and sample-ebm at their defaults on 2-D densities drawn afresh, scored against "
               "exact draws", "61 min (4 densities x mdsm, ml-mala, ml-hmc, ml-learned; --quick: 20 s a density and "
               "configuration)", _bench("--suite", "unseen"), ("unseen.csv",)),
    Experiment("learned_sampler", "thesis Table 4.1 / C.2 at CPU scale: the learned sampler against MALA and HMC, "
               "with Figures 4.1 and C.1a", "over 35 min for the 7 targets", ("benchmarks/learned_sampler.py",),
               ("table.csv",)),
    Experiment("learned_user_start", "the learned sampler run the way a user runs it, from the default start "
               "(needs --sampler FILE from entropy-mcmc train-sampler)", "not measured yet",
               ("benchmarks/learned_user_start.py",), ("*.json",), quick=None, seed=1),
    Experiment("pyro_adapter", "Pyro adapter overhead on German BLR: our kernels through pyro.infer.MCMC and through "
               "our runner, against Pyro's NUTS", "not measured yet", ("benchmarks/pyro_adapter.py",),
               ("pyro_adapter.json",), out_file="pyro_adapter.json"),
    Experiment("time_to_result", "time to result on German BLR: entropy-mcmc sample's HMC and ChEES-HMC against "
               "BlackJAX's HMC and ChEES-HMC as whole processes, interleaved, min and median ESS/s and their ratios "
               "(--pyro adds Pyro's NUTS)", "8 min (3 repeats)", ("benchmarks/time_to_result.py",),
               ("ttr.json:medians", "ttr.json:ratios"), quick=None),
    Experiment("chain_scaling", "64 to 16384 chains of HMC on German BLR, whole processes beside BlackJAX's HMC: "
               "wall time, time per gradient against the matrix-product floor, peak memory", "12 min",
               ("benchmarks/chain_scaling.py",), ("chain_scaling.json:rows",), quick=None),
    Experiment("transition_overhead", "per-transition overhead outside the model on small posteriordb models: an "
               "older revision's code against the working tree, whole processes, interleaved (needs REVISION and "
               "--db PATH)", "7 min (3 posteriors x 3 repeats, load 2)", ("benchmarks/transition_overhead.py",),
               ("overhead.json:rows",), quick=None, seed=None),
    Experiment("mass_matrix", "mass matrix (diag, dense, auto), HMC's leapfrog steps and the step-size targets of "
               "HMC and ChEES-HMC on German BLR: entropy-mcmc sample processes, min ESS per gradient and per second "
               "(--config NAME=ARGS for others)", "20 min (11 configurations x 2 repeats, load ~6)",
               ("benchmarks/mass_matrix.py",), ("mass_matrix.json",), quick=None, seed=None),
    Experiment("nuts_hierarchical", "NUTS on the centred funnel and eight schools against Pyro's NUTS: divergences "
               "and R-hat", "over 20 min", ("benchmarks/nuts_hierarchical.py",), ("nuts_hierarchical.json",),
               quick=None, out_file="nuts_hierarchical.json"),
    Experiment("replica_exchange", "mode weights of MALA alone against replica exchange around MALA, at an equal "
               "gradient budget", "4 min", ("benchmarks/replica_exchange.py",), ("replica_exchange.json",),
               quick=None, seed=None, out_file="replica_exchange.json"),
    Experiment("mdsm_replica_exchange", "whether replica exchange on an MDSM model's energy puts its modes in the "
               "right proportions: the unseen suite's MDSM models, annealed Langevin against it followed by replica "
               "exchange around MALA (needs --suite DIR, a full unseen run)", "4 min (4 densities)",
               ("benchmarks/mdsm_replica_exchange.py",), ("mdsm_replica_exchange.json",), quick=None, seed=None,
               out_file="mdsm_replica_exchange.json"),
    Experiment("caprbm_bars", "thesis Fig. 2.1a: the CAP-RBM with and without the amplitude coupling J on the bars",
               "6-12 min (--quick seconds)", ("benchmarks/caprbm_bars.py",), ("metrics.csv",)),
    Experiment("caprbm_mnist", "thesis Fig. 2.1b,c at CPU scale: the CAP-RBM on MNIST in the complex wavelet domain "
               "(--mnist-dir DIR: where MNIST is)", "not measured yet", ("benchmarks/caprbm_mnist.py",),
               ("reconstruction_error.csv",)),
    Experiment("rbm_digits", "the Bernoulli RBM against scikit-learn's BernoulliRBM on the 8x8 digits",
               "under 1 min (--quick 10 s)", ("benchmarks/rbm_digits.py",), ("results.csv",), seed=None),
    Experiment("nmce_digits", "NMCE on the 8x8 digits against k-means and spectral clustering (--data: another set)",
               "2.5 min", ("benchmarks/nmce_digits.py",), ("results.json",), quick=None),
    Experiment("nmce_manifolds", "NMCE on the union of two manifolds (appendix D.1, Table D.1)", "not measured yet",
               ("benchmarks/nmce_manifolds.py",), ("results.json",), quick=None),
    Experiment("nmce_faces", "NMCE at the cluster command's defaults on face sets against k-means, spectral "
               "clustering and EnSC (needs --data FILE...)", "not measured yet", ("benchmarks/nmce_faces.py",),
               ("results.json",), quick=None),
    Experiment("ebm_toys", "MDSM and annealed Langevin against TorchEBM's denoising score matching on the 2-D toys",
               "not measured yet", ("benchmarks/ebm_toys.py",), ("results.json",), quick=None),
    Experiment("ebm_images", "MDSM on the 8x8 digits (--data mnist: MNIST-10k): samples, inpainting, PSNR, "
               "Frechet distance", "20-25 min", ("benchmarks/ebm_images.py",), ("results.json",), quick=None),
    Experiment("ebm_ml_toys", "maximum-likelihood training with our kernels as negative samplers against TorchEBM's "
               "persistent CD on the 2-D toys", "35 min (--seconds 30: 18 min)", ("benchmarks/ebm_ml.py", "toys"),
               ("toys.json",), quick=None),
    Experiment("ebm_ml_images", "thesis Figure 4.3b / C.3 analogue: adaptive MALA against the learned sampler as "
               "negative samplers on the 8x8 digits", "not measured yet", ("benchmarks/ebm_ml.py", "images"),
               ("images.json",), quick=None),
    Experiment("ebm_ml_cost", "time per update: maximum likelihood against MDSM on the same network",
               "not measured yet", ("benchmarks/ebm_ml.py", "cost"), ("cost.json",), quick=None),
)}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)} "
                         "(entropy-mcmc bench --list)")
    return EXPERIMENTS[name]


def list_text(width: int = 118) -> str:
    """One entry per experiment: name, expected time on the development machine, description."""
    lines = [f"{'experiment':<20} {'expected time':<34} description"]
    for e in EXPERIMENTS.values():
        lines += textwrap.wrap(f"{e.name:<20} {e.expected:<34} {e.description}", width, subsequent_indent=" " * 56,
                               break_on_hyphens=False)
    lines.append("run one: entropy-mcmc bench --experiment NAME [--seed S] [--quick] [--out DIR] [its own options]")
    return "\n".join(lines)


def _parser(e: Experiment) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"entropy-mcmc bench --experiment {e.name}", allow_abbrev=False)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    return p


def regenerate_command(e: Experiment, argv: Sequence[str]) -> Tuple[str, List[str], Path]:
    """The command that reruns `e` with `argv` (seed made explicit), the child's arguments, and the output folder."""
    args, own = _parser(e).parse_known_args(list(argv))
    if args.seed is not None and e.seed is None:
        raise ValueError(f"experiment {e.name} takes no --seed (its seeds are fixed or its own options)")
    if args.quick and e.quick is None:
        raise ValueError(f"experiment {e.name} has no --quick settings")
    out = Path(args.out or os.path.join("results", e.name))
    seed = [] if e.seed is None else ["--seed", str(e.seed if args.seed is None else args.seed)]
    shared = seed + (["--quick"] if args.quick else []) + ([] if args.out is None else ["--out", args.out])
    script = e.command[0]
    if script.endswith(".py"):
        if not (ROOT / script).is_file():
            raise ValueError(f"experiment {e.name} runs {script} of a source checkout; not found under {ROOT}")
        script = str(ROOT / script)
    child = [script, *e.command[1:], *(e.quick if args.quick else ()), *seed,
             "--out", str(out / e.out_file if e.out_file else out), *own]
    return shlex.join(["entropy-mcmc", "bench", "--experiment", e.name, *shared, *own]), child, out


def run_experiment(name: str, argv: Sequence[str] = ()) -> int:
    """Run experiment `name` with `argv` (the shared options and its own) and write `result.json` in its output
    folder; returns the child's exit status (no result.json unless 0)."""
    e = get_experiment(name)
    command, child, out = regenerate_command(e, argv)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    print(f"$ {command}\n  runs: python {shlex.join(child)}", flush=True)
    started, t0 = time.time(), time.perf_counter()
    code = subprocess.run([sys.executable, *child], env=env).returncode
    seconds = time.perf_counter() - t0
    if code != 0:
        print(f"experiment {name} failed (exit status {code}); no result.json written", file=sys.stderr)
        return code
    written = sorted(p for p in out.rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1
                     and p.name != "result.json")
    tables = [dict(t, min_ess=e.min_ess) for spec in e.tables for t in _tables(out, spec, set(written))]
    commit, dirty = _commit()
    from .suite import _machine, _torch_threads

    record = {"experiment": name, "description": e.description, "expected": e.expected, "command": command,
              "child": shlex.join(["python", *e.command[:1], *child[1:]]), "cwd": os.getcwd(),
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "seconds": seconds,
              "machine": {**_machine(), "torch_threads": _torch_threads(),
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
              "commit": commit, "uncommitted_changes": dirty, "tables": tables,
              "figures": [p.relative_to(out).as_posix() for p in written if p.suffix == ".png"],
              "files": [p.relative_to(out).as_posix() for p in written]}
    path = out / "result.json"
    path.write_text(json.dumps(_plain(record), indent=1) + "\n")
    print(f"wrote {path} ({len(tables)} tables, {len(record['figures'])} figures, {seconds:.0f} s); "
          "entropy-mcmc bench --report puts it in the report")
    return 0


def _commit() -> Tuple[Optional[str], Optional[bool]]:
    """HEAD of the checkout the package runs from, and whether tracked files differ from it (None, None: no git)."""
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return head.strip(), bool(status.strip())


def _tables(out: Path, spec: str, written: set) -> List[dict]:
    """The tables of one `tables` pattern, from the files of this run it matches."""
    pattern, _, key = spec.partition(":")
    found = []
    for name in sorted(glob.glob(str(out / pattern))):
        path = Path(name)
        if path not in written:
            continue
        title = path.relative_to(out).as_posix() + (f" ({key})" if key else "")
        if path.suffix == ".csv":
            with open(path, newline="") as f:
                found.append(_table(title, [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]))
        else:
            data = json.loads(path.read_text())
            found += _json_tables(title, data[key] if key else data)
    if not found:
        print(f"note: no table in {out / pattern} from this run", file=sys.stderr)
    return found


def _json_tables(title: str, data) -> List[dict]:
    """A list of rows; an object with `rows`; an object of rows (a `name` column first); an object of objects
    with `rows` (a table each); else a table of the object's scalars, flattened, as name and value."""
    if isinstance(data, dict) and "rows" in data:
        return _json_tables(title, data["rows"])
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return [_table(title, [_scalars(r) for r in data])]
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        if all("rows" in v for v in data.values()):
            return [t for k, v in data.items() for t in _json_tables(f"{title}: {k}", v)]
        return [_table(title, [{"name": k, **_scalars(v)} for k, v in data.items()])]
    if isinstance(data, dict):
        return [_table(title, [{"name": k, "value": v} for k, v in _scalars(data, flatten=True).items()])]
    return []


def _table(title: str, rows: List[dict]) -> dict:
    return {"title": title, "columns": list(dict.fromkeys(k for r in rows for k in r)), "rows": rows}


def _scalars(row: dict, flatten: bool = False, prefix: str = "") -> dict:
    """The scalar entries of `row` (nested objects flattened as `a.b` when `flatten`, else left out)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict) and flatten:
            out.update(_scalars(v, True, f"{prefix}{k}."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[f"{prefix}{k}"] = v
    return out


def _cell(text: str):
    """A CSV cell as the number, boolean or text it holds (empty: None)."""
    if text in ("True", "False"):
        return text == "True"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text if text != "" else None


def _plain(value):
    """`value` with NaN and infinities as None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


__all__ = ["Experiment", "EXPERIMENTS", "get_experiment", "list_text", "regenerate_command", "run_experiment"]

"""Pyro adapter overhead on German BLR: min-ESS/s of our kernels through `pyro.infer.MCMC`, through our runner on
the Pyro-model target, and through our runner on the native target, against Pyro's NUTS, in one run.

    .venv/bin/python benchmarks/pyro_adapter.py [--quick] [--threads 1] [--out results/pyro_adapter.json]

Paths (rows):
  pyro MCMC      `MCMC(PyroKernel(logistic_regression_model, k))` or `MCMC(NUTS(...))`: Pyro's loop, one
                 chain at a time, Pyro's potential (JIT-traced) on the unconstrained space.
  runner/pyro    our `sample` on `PyroTarget(logistic_regression_model)`: all chains in one model run
                 under an outer chain plate.
  runner/native  our `sample` on `LogisticRegression.from_dataset` (analytic energy and gradient).
The "1 chain" rows run the runner with a single chain and Pyro's number of draws, so their
time per chain-step is the per-step cost without vectorization: the adapter's overhead is
the ratio of the pyro-MCMC row to the runner/native 1-chain row.

Every MH kernel adapts per chain during warmup (dual averaging; HMC also a diagonal mass
matrix, and a +-50% step-size jitter after warmup, as the CLI's default). The learned sampler
is trained once on the Pyro target (inside Pyro's warmup of the first chain, as `PyroKernel`
does it; the runner/pyro rows reuse it) and once on the native target, with the same settings;
training time counts as warmup, and its chains start from the training's bootstrap chains.
ESS is ArviZ's bulk ESS, minimum over the 25 coordinates, pooled over chains; ESS/s divides by
sampling time, "total" by warmup + training + sampling.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch


class PhaseClock:
    """A `hook_fn` for `pyro.infer.MCMC`: time spent producing warmup iterations versus draws."""

    def __init__(self):
        self.calls = []

    def __call__(self, kernel, params, stage, i):
        self.calls.append((stage.startswith("Sample"), time.perf_counter()))

    def split(self, t_start: float, t_end: float):
        sampling, prev = 0.0, t_start
        for is_sample, t in self.calls:
            if is_sample:
                sampling += t - prev
            prev = t
        return (t_end - t_start) - sampling, sampling


def min_ess(draws: np.ndarray) -> float:
    from entropy_mcmc.diagnostics import ess

    return float(np.min(ess(draws, "bulk")))


def accuracy(draws: np.ndarray, ref) -> float:
    """max over coordinates of |posterior mean - reference mean| / reference sd."""
    if ref is None:
        return float("nan")
    mean = draws.reshape(-1, draws.shape[-1]).mean(0)
    return float(np.max(np.abs(mean - np.asarray(ref["mean"])) / np.asarray(ref["std"])))


def row(path, kernel, chains, draws, warmup_s, sampling_s, x, accept, ref, note=""):
    e = min_ess(x) if chains * draws > 4 and x.shape[1] >= 4 else float("nan")
    return {"path": path, "kernel": kernel, "chains": chains, "draws": draws, "warmup_s": warmup_s,
            "sampling_s": sampling_s, "min_ess_bulk": e, "ess_per_s": e / sampling_s,
            "ess_per_s_total": e / (warmup_s + sampling_s), "ms_per_chain_step": 1e3 * sampling_s / (chains * draws),
            "acceptance": accept, "mean_err_sd": accuracy(x, ref), "note": note}


def run_pyro(kernel, data, args, name, ref, note=""):
    import pyro
    from pyro.infer import MCMC

    pyro.set_rng_seed(args.seed)
    clock = PhaseClock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcmc = MCMC(kernel, num_samples=args.pyro_draws, warmup_steps=args.pyro_warmup,
                    num_chains=args.pyro_chains, disable_progbar=True, hook_fn=clock)
        t0 = time.perf_counter()
        mcmc.run(*data)
        t1 = time.perf_counter()
    warm, samp = clock.split(t0, t1)
    x = mcmc.get_samples(group_by_chain=True)["w"].double().numpy()
    diag = mcmc.diagnostics()
    rates = diag.get("acceptance rate", {})
    accept = float(np.mean(list(rates.values()))) if rates else float("nan")
    return row("pyro MCMC", name, args.pyro_chains, args.pyro_draws, warm, samp, x, accept, ref, note), mcmc


def run_runner(path, name, make_kernel, target, init, warmup, draws, ref, seed, extra_warmup=0.0, note=""):
    from entropy_mcmc.samplers import sample

    res = sample(make_kernel(target), init.clone(), draws, num_warmup=warmup, progress=False, seed=seed)
    x = res.draws.double().numpy()
    return row(path, name, init.shape[0], draws, res.warmup_time + extra_warmup, res.sampling_time, x,
               res.acceptance_rate, ref, note), x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="german")
    ap.add_argument("--pyro-chains", type=int, default=2)
    ap.add_argument("--pyro-warmup", type=int, default=500)
    ap.add_argument("--pyro-draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=32, help="chains of the vectorized runner rows")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--hmc-steps", type=int, default=10)
    ap.add_argument("--jitter", type=float, default=0.5, help="HMC step-size jitter after warmup")
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--no-learned", action="store_true")
    ap.add_argument("--no-jit", action="store_true", help="do not JIT-trace Pyro's potential (NUTS and adapter)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small settings to check the script runs")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    if args.quick:
        args.pyro_warmup, args.pyro_draws, args.warmup, args.draws = 50, 100, 50, 100
        args.chains, args.train_steps, args.train_batch = 8, 20, 16
    torch.set_num_threads(args.threads)

    from pyro.infer import NUTS

    from entropy_mcmc.pyro import PyroKernel, blr_target, load_blr_data, logistic_regression_model
    from entropy_mcmc.learning import train_on_target
    from entropy_mcmc.samplers import build_kernel
    from entropy_mcmc.targets import LogisticRegression
    from entropy_mcmc.targets.logistic_regression import load_reference

    ref = load_reference(args.dataset)
    data = load_blr_data(args.dataset)
    jit = dict(jit_compile=not args.no_jit, ignore_jit_warnings=True)
    train = dict(steps=args.train_steps, batch_size=args.train_batch)
    rows = []

    def report(r):
        rows.append(r)
        print(f"  {r['path']:<14} {r['kernel']:<8} chains {r['chains']:>3}  min ESS {r['min_ess_bulk']:8.1f}  "
              f"sampling {r['sampling_s']:7.2f} s  ESS/s {r['ess_per_s']:8.2f}  "
              f"{r['ms_per_chain_step']:.3f} ms/chain-step  acc {r['acceptance']:.2f}", flush=True)

    # --- Pyro's MCMC loop: NUTS and our kernels through PyroKernel -----------------------------------------
    report(run_pyro(NUTS(logistic_regression_model, **jit), data, args, "NUTS", ref)[0])
    report(run_pyro(PyroKernel(logistic_regression_model, "mala", **jit), data, args, "MALA", ref)[0])
    report(run_pyro(PyroKernel(logistic_regression_model, "hmc", num_steps=args.hmc_steps,
                               step_size_jitter=args.jitter, **jit), data, args, "HMC", ref)[0])
    trained_pyro = None
    if not args.no_learned:
        kernel = PyroKernel(logistic_regression_model, "learned", train=train, **jit)
        r, _ = run_pyro(kernel, data, args, "learned", ref, note="training inside warmup")
        trained_pyro = kernel.train_result
        r["train_s"] = trained_pyro.train_time
        report(r)

    # --- our runner: Pyro-model target and native target -------------------------------------------------
    pyro_target = blr_target(args.dataset, jit_compile=not args.no_jit)
    native = LogisticRegression.from_dataset(args.dataset)
    gen = torch.Generator().manual_seed(args.seed)
    init = pyro_target.initial_position(args.chains, generator=gen)

    def mala(t):
        return build_kernel("mala", t, num_warmup=args.warmup, target_accept=0.574, per_chain=True, adapt_mass=False)

    def hmc(t):
        return build_kernel("hmc", t, num_warmup=args.warmup, target_accept=0.8, per_chain=True, adapt_mass="diag",
                            jitter=args.jitter, num_steps=args.hmc_steps)

    trained_native = None
    if not args.no_learned:
        t0 = time.perf_counter()
        trained_native = train_on_target(native, train, seed=args.seed)
        trained_native_s = time.perf_counter() - t0
    draws = {}
    for path, target in (("runner/pyro", pyro_target), ("runner/native", native)):
        for name, make in (("MALA", mala), ("HMC", hmc)):
            r, draws[path, name] = run_runner(path, name, make, target, init, args.warmup, args.draws, ref, args.seed)
            report(r)
        if not args.no_learned:
            trained = trained_pyro if path == "runner/pyro" else trained_native
            train_s = trained.train_time if path == "runner/pyro" else trained_native_s
            # like PyroKernel, start from the training's bootstrap chains (already in the typical set)
            buffer = trained.extra["buffer"]
            start = buffer[torch.arange(args.chains) % buffer.shape[0]].to(init)
            r, _ = run_runner(path, "learned",
                              lambda t: build_kernel("learned", t, num_warmup=0, sampler=trained.model), target, start,
                              args.warmup, args.draws, ref, args.seed, extra_warmup=train_s,
                           note="trained on this target" if path == "runner/native" else
                           "the adapter's trained sampler")
            r["train_s"] = train_s
            report(r)
    # single chain, Pyro's number of draws: the per-step cost without vectorization
    for path, target in (("runner/pyro", pyro_target), ("runner/native", native)):
        for name, make in (("MALA", mala), ("HMC", hmc)):
            report(run_runner(path, name, make, target, init[:1], args.pyro_warmup, args.pyro_draws, ref,
                              args.seed, note="1 chain")[0])

    print()
    print("| path | kernel | chains x draws | warmup (+train) s | sampling s | min ESS | ESS/s | ESS/s total "
          "| ms / chain-step | accept | max mean err / sd |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']}{' (1 chain)' if r['note'] == '1 chain' else ''} | {r['kernel']} | "
              f"{r['chains']} x {r['draws']} | {r['warmup_s']:.1f} | {r['sampling_s']:.1f} | "
              f"{r['min_ess_bulk']:.0f} | {r['ess_per_s']:.1f} | {r['ess_per_s_total']:.1f} | "
              f"{r['ms_per_chain_step']:.3f} | {r['acceptance']:.2f} | {r['mean_err_sd']:.3f} |")
    print()
    step = {(r["path"], r["kernel"], r["note"] == "1 chain"): r["ms_per_chain_step"] for r in rows}
    for name in ("MALA", "HMC"):
        a = step[("pyro MCMC", name, False)]
        n1, p1 = step[("runner/native", name, True)], step[("runner/pyro", name, True)]
        nv, pv = step[("runner/native", name, False)], step[("runner/pyro", name, False)]
        print(f"{name}: adapter {a:.3f} ms/step = {a / n1:.1f}x our runner on the native target (1 chain, "
              f"{n1:.3f}), {a / p1:.1f}x our runner on the Pyro target (1 chain, {p1:.3f}); vectorized "
              f"({args.chains} chains) Pyro target / native = {pv / nv:.1f}x")
    # same seed, same energy up to a constant: the two runner paths should draw the same chains
    for name in ("MALA", "HMC"):
        diff = float(np.max(np.abs(draws["runner/pyro", name] - draws["runner/native", name])))
        print(f"{name}: max |draw(runner/pyro) - draw(runner/native)| = {diff:.2e}")
    if args.out:
        meta = {"args": vars(args), "torch": torch.__version__, "python": platform.python_version(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "reference": ref is not None}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""Thesis Table 4.1 / C.2 at CPU scale: the learned sampler against MALA and HMC, plus Figures 4.1 and C.1a.

    .venv/bin/python benchmarks/learned_sampler.py                       # every target, CPU presets
    .venv/bin/python benchmarks/learned_sampler.py --targets icg50,scg2 --quick

For each target: train the learned sampler with its Table C.1 settings scaled to a CPU
(`entropy_mcmc.samplers.learned.preset`), then run 64 chains for 2000 steps with each of
the learned sampler (no warmup), MALA (step size dual-averaged to acceptance 0.574 over 500
warmup steps) and HMC (40 leapfrog steps, step size dual-averaged to 0.8 over 500 warmup
steps, identity mass: appendix C.3), all from the same starting points (exact samples where
the target has them, else the learned sampler's bootstrap buffer after training), the thesis'
convention. A second learned row runs it the user's way (issue 15): `run_chains` from the default
start near zero with the default kernel, 500 MALA warmup steps handed over to the learned kernel
mixed with a 0.05 MALA share; its stuck_chains counts chains with no accepted move over the last
10% of the draws. A sampler
trained with a preconditioner (the BLR presets) is also compared with HMC-40 with step-size
jitter in the same whitened coordinates, i.e. with the same dense metric. ESS:

- thesis: A-NICE-MC's estimator on the last 1000 steps with the true (or reference) moments,
  per chain (`entropy_mcmc.diagnostics.autocorr_ess`); ESS/MH = min ESS / 1000, ESS/grad
  divides by the gradient evaluations per step, ESS/5k = 5000 ESS/MH, ESS/s = min ESS x
  chains / time of those 1000 steps.
- arviz: rank-normalized bulk ESS of the same 64 x 1000 draws, pooled over chains.

Writes under --out: table.csv, table.md, results.json, the trained samplers (*.pt),
fig41_<target>.png for 2d targets (proposals from one point: MALA, entropy-trained,
L2-trained) and entropy_<target>.png (proposal entropy during training, learned sampler
against adaptive MALA trained by the same objective).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from entropy_mcmc.diagnostics import autocorrelation
from entropy_mcmc.diagnostics.autocorr_ess import autocorr_ess
from entropy_mcmc.diagnostics.ess import ess as arviz_ess
from entropy_mcmc.samplers import build_kernel, run_chains, sample
from entropy_mcmc.learning import SamplerTrainConfig, preset, train_sampler
from entropy_mcmc.samplers.learned import AdaptiveMALAConfig, AdaptiveMALAProposal
from entropy_mcmc.targets import get_target
from entropy_mcmc.targets.base import Target

TARGETS = ("icg50", "scg2", "funnel1-100", "funnel3-20", "german", "australian", "heart")
THESIS = {  # Table 4.1 and C.2 (and section 4.5 for Funnel-3)
    "icg50": {"ess_per_mh": 0.86, "ess_per_grad": 0.215},
    "scg2": {"ess_per_mh": 0.89, "ess_per_grad": 0.22},
    "funnel1-100": {"x0_ess_per_grad": 3.7e-2, "rest_ess_per_grad": 7.2e-2},
    "funnel3-20": {"x0_ess_per_mh": 0.256, "hmc_x0_ess_per_mh": 0.0079},
    "german": {"ess_per_5k": 3150, "ess_per_s": 3651, "hmc_ess_per_s": 772.7},
    "australian": {"ess_per_5k": 2950, "ess_per_s": 3433, "hmc_ess_per_s": 127.2},
    "heart": {"ess_per_5k": 3600, "ess_per_s": 4235, "hmc_ess_per_s": 997.1},
}
CHAINS, STEPS, LAST, WARMUP = 64, 2000, 1000, 500


def evaluate(name, result, target, mean, var, label):
    """Thesis and ArviZ ESS figures of the last LAST steps of a run."""
    draws = result.draws[:, -LAST:].double()
    e = autocorr_ess(draws, mean, var, last=LAST)
    grads_per_step = result.num_grad_evals / result.num_steps
    seconds = result.sampling_time * LAST / result.num_steps
    row = {"target": name, "sampler": label, "accept": result.acceptance_rate,
           "grads_per_step": grads_per_step, "step_size": float(torch.as_tensor(result.stats["step_size"]).mean())
           if "step_size" in result.stats else float("nan"),
           "min_ess": float(e.min()), "ess_per_mh": float(e.min()) / LAST,
           "ess_per_grad": float(e.min()) / LAST / grads_per_step if grads_per_step else float("nan"),
           "ess_per_5k": 5000 * float(e.min()) / LAST,
           "ess_per_s": float(e.min()) * result.num_chains / seconds,
           "x0_ess_per_mh": float(e[0]) / LAST, "rest_min_ess_per_mh": float(e[1:].min()) / LAST,
           # where x0's ESS sits at the estimator's floor, how far from moving it is (pooled moments: with
           # the true ones, chains that barely move score above 1 from their starting points' spread)
           "x0_lag1_autocorr": _pooled_lag1(draws[:, -LAST:, :1]),
           "x0_mean_abs_step": float((draws[:, 1:, 0] - draws[:, :-1, 0]).abs().mean()),
           "sampling_s_1000": seconds}
    bulk = arviz_ess(draws, "bulk")
    row["arviz_min_ess"] = float(bulk.min())
    row["arviz_ess_per_mh"] = float(bulk.min()) / (result.num_chains * LAST)
    row["arviz_x0_ess_per_mh"] = float(bulk[0]) / (result.num_chains * LAST)
    mu = np.asarray(mean, dtype=np.float64).reshape(-1)
    sd = np.sqrt(np.asarray(var, dtype=np.float64).reshape(-1))
    row["max_mean_err_sd"] = float(np.max(np.abs(draws.flatten(0, 1).mean(0).numpy() - mu) / sd))
    return row


class Whitened(Target):
    """The target in a preconditioned model's coordinates y = L^{-1}(x - loc): HMC there has the same dense metric."""

    def __init__(self, target, model):
        super().__init__(target.event_shape)
        self.base, self.model, self.name = target, model, target.name

    def energy(self, y):
        return self.base.energy(self.model.unwhiten(y))

    def energy_and_grad(self, y):
        u, g = self.base.energy_and_grad(self.model.unwhiten(y))
        return u, self.model.whiten_grad(g)

    def grad(self, y):
        return self.model.whiten_grad(self.base.grad(self.model.unwhiten(y)))


def log_rows(name, rows, log):
    for r in rows:
        log(f"[{name}] {r['sampler']:8s} accept {r['accept']:.3f} ESS/MH {r['ess_per_mh']:.4f} "
            f"ESS/grad {r['ess_per_grad']:.4g} x0 ESS/MH {r['x0_ess_per_mh']:.4f} ESS/5k {r['ess_per_5k']:.0f} "
            f"ESS/s {r['ess_per_s']:.0f} | arviz ESS/MH {r['arviz_ess_per_mh']:.4f} | "
            f"x0 lag-1 autocorr {r['x0_lag1_autocorr']:.4f}, mean |step| {r['x0_mean_abs_step']:.3g} | "
            f"mean err {r['max_mean_err_sd']:.3f} sd")


def run_baseline(name, target, init, seed, target_accept, jitter=0.0, **options):
    """A registry kernel as the thesis' baselines run: step size adapted from 0.1, no mass matrix."""
    kernel = build_kernel(name, target, num_warmup=WARMUP, step_size=0.1, target_accept=target_accept, adapt_mass=False,
                          jitter=jitter, **options)
    return sample(kernel, init, STEPS, num_warmup=WARMUP, progress=False, seed=seed)


def proposals_figure(target, kernels, x0, path, n=400, seed=0):
    """Figure 4.1 analogue: n proposals from one point x0; accepted blue, rejected black, target in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(kernels), figsize=(4.2 * len(kernels), 4.2), sharex=True, sharey=True)
    sd = target.std.numpy()
    lim = 3.2 * float(sd.max())
    grid = torch.linspace(-lim, lim, 200, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    u = target.energy(torch.stack([gx.flatten(), gy.flatten()], 1)).reshape(200, 200)
    for ax, (label, kernel) in zip(axes, kernels.items()):
        kernel.reseed(seed)
        state = kernel.init(x0.expand(n, 2).clone())
        prop = kernel.propose(state)
        log_ratio = state.energy - prop.state.energy + prop.log_correction
        acc = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < torch.exp(log_ratio.clamp(max=0))
        y = prop.state.position.detach()
        dens = torch.exp(-(u - u.min()))
        ax.contour(gx, gy, dens, levels=[math.exp(-4.5), math.exp(-2.0), math.exp(-0.5)], colors="red",
                   linewidths=0.8)
        ax.scatter(y[~acc, 0], y[~acc, 1], s=5, c="black", label="rejected")
        ax.scatter(y[acc, 0], y[acc, 1], s=5, c="tab:blue", label="accepted")
        ax.scatter([float(x0[0])], [float(x0[1])], s=80, c="gold", edgecolors="k", zorder=5)
        ax.set_title(f"{label}\naccept {float(acc.float().mean()):.2f}, "
                     f"E|x'-x|^2 A {float((acc[:, None] * (y - x0) ** 2).sum(1).mean()):.1f}")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    axes[0].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def entropy_figure(name, histories, path):
    """Figure C.1a analogue: proposal entropy (nats) during training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, h in histories.items():
        e = np.asarray(h["entropy"])
        k = max(1, len(e) // 200)
        smooth = np.convolve(e, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(len(smooth)) + k // 2, smooth, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("proposal entropy (nats)")
    ax.set_title(f"{name}: proposal entropy during training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine():
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (StopIteration, OSError):
        model = platform.processor()
    return {"cpu": model, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "load_average": list(__import__("os").getloadavg())}


def _pooled_lag1(x) -> float:
    x = x.detach().double().numpy()
    return float(autocorrelation(x, 1, mean=x.mean((0, 1)), var=x.var((0, 1)), unbiased=True).mean(0)[1, 0])


def run_target(name, out, log, args):
    """Train, evaluate and plot one target with the command-line settings `args`; return its table rows."""
    target = get_target(name)
    seed = args.seed
    overrides = dict(steps=60, batch_size=64) if args.quick else dict(steps=args.train_steps,
                                                                     batch_size=args.batch_size)
    overrides.update(width=args.width, precondition=args.precondition)
    model_cfg, train_cfg = preset(target, "cpu", **overrides)
    log(f"[{name}] training: width {model_cfg.width}, N={model_cfg.num_steps}, batch {train_cfg.batch_size} x "
        f"{train_cfg.steps} steps, target acceptance {train_cfg.target_accept}, lr {train_cfg.lr} -> "
        f"{train_cfg.min_lr}")
    trained = train_sampler(target, config=train_cfg, model_config=model_cfg, seed=seed, progress=False)
    trained.save(out / f"{name}.pt", benchmark="benchmarks/learned_sampler.py")
    fin = trained.final
    log(f"[{name}] trained in {trained.train_time:.1f} s: acceptance {fin['accept']:.3f}, beta {fin['beta']:.3g}, "
        f"entropy {trained.history['entropy'][0]:.2f} -> {fin['entropy']:.2f}, skipped {trained.skipped_steps}, "
        f"dropped samples {int(sum(trained.history['dropped']))}")

    gen = torch.Generator().manual_seed(seed + 11)
    if trained.sample_source == "exact":
        init = target.sample(CHAINS, gen)
    else:
        init = trained.extra["buffer"][:CHAINS].reshape((CHAINS,) + tuple(target.event_shape)).float()
    mean, var = target.mean, target.std ** 2

    rows = []
    t0 = time.perf_counter()
    # the thesis' convention: chains started at posterior draws, the learned kernel alone, no warmup
    learned = build_kernel("learned", target, num_warmup=0, sampler=trained.model, mixture_share=0)
    res = sample(learned, init, STEPS, progress=False, seed=seed)
    pre = model_cfg.precondition
    row = evaluate(name, res, target, mean, var, "learned" if pre == "none" else f"learned ({pre} precond.)")
    row.update(train_s=trained.train_time, batch_size=train_cfg.batch_size, train_steps=train_cfg.steps,
               width=model_cfg.width, flow_steps=model_cfg.num_steps, train_accept=fin["accept"],
               train_entropy=fin["entropy"], beta=fin["beta"], precondition=pre)
    rows.append(row)
    # the user's way (issue 15): the default start near zero, the default kernel (500 MALA warmup steps, then
    # the learned kernel with a 0.05 MALA share), as `entropy-mcmc sample --kernel learned` runs it
    user = run_chains(target, "learned", chains=CHAINS, num_warmup=WARMUP, num_draws=STEPS, seed=seed,
                      sampler=trained.model, warn=False)
    row = evaluate(name, user, target, mean, var, "learned, user's way")
    tail = user.stats["accepted"][:, -STEPS // 10:]
    row.update(stuck_chains=int((~tail.any(1)).sum()), warmup_s=user.warmup_time)
    rows.append(row)
    log(f"[{name}] learned: {time.perf_counter() - t0:.1f} s")
    if args.learned_only:
        log_rows(name, rows, log)
        return rows
    baselines = (("MALA", "mala", {}, 0.574, 0.0), ("HMC-40", "hmc", {"num_steps": 40}, 0.8, 0.0),
                 ("HMC-40+jitter", "hmc", {"num_steps": 40}, 0.8, 0.5))
    for label, kernel, options, accept, jitter in baselines:
        t0 = time.perf_counter()
        res = run_baseline(kernel, target, init, seed, accept, jitter, **options)
        rows.append(evaluate(name, res, target, mean, var, label))
        log(f"[{name}] {label}: {time.perf_counter() - t0:.1f} s")
    if pre != "none":
        # the fair baseline for a preconditioned sampler: HMC-40+jitter with the same fitted metric
        label, t0 = f"HMC-40+jitter ({pre} metric)", time.perf_counter()
        white = Whitened(target, trained.model)
        with torch.no_grad():
            y0 = trained.model.whiten(init.reshape(CHAINS, -1))
        res = run_baseline("hmc", white, y0, seed, 0.8, 0.5, num_steps=40)
        with torch.no_grad():
            res.draws = trained.model.unwhiten(res.draws.flatten(0, 1)).reshape(res.draws.shape)
        rows.append(evaluate(name, res, target, mean, var, label))
        log(f"[{name}] {label}: {time.perf_counter() - t0:.1f} s")
    log_rows(name, rows, log)

    # Figure C.1a analogue: adaptive MALA (linear, same objective) trained with the same batch and steps
    am_cfg = SamplerTrainConfig(**{**train_cfg.__dict__, "lr": 1e-2, "min_lr": 1e-4})
    am = train_sampler(target, model=AdaptiveMALAProposal(AdaptiveMALAConfig(target.dim, tuple(target.event_shape))),
                       config=am_cfg, seed=seed, progress=False)
    entropy_figure(name, {"learned sampler": trained.history, "adaptive MALA (gadMALA)": am.history},
                   out / f"entropy_{name}.png")
    rows[0]["adaptive_mala_final_entropy"] = am.final["entropy"]
    log(f"[{name}] adaptive MALA final entropy {am.final['entropy']:.2f} vs learned {fin['entropy']:.2f}")

    if target.dim == 2:
        l2_cfg = SamplerTrainConfig(**{**train_cfg.__dict__, "objective": "l2", "steps": max(50, train_cfg.steps // 4)})
        l2 = train_sampler(target, config=l2_cfg, model_config=model_cfg, seed=seed, progress=False)
        l2.save(out / f"{name}_l2.pt", benchmark="benchmarks/learned_sampler.py")
        mala_step = rows[1]["step_size"]
        x0 = (-0.5 * target.std * torch.tensor([1.0, 1.0], dtype=torch.float64) * 2.5).float()
        kernels = {f"MALA (step {mala_step:.2f})": build_kernel("mala", target, num_warmup=0, step_size=mala_step,
                                                                  adapt_mass=False),
                   "entropy-trained": build_kernel("learned", target, num_warmup=0, sampler=trained.model,
                                                   mixture_share=0),
                   "L2-jump-trained": build_kernel("learned", target, num_warmup=0, sampler=l2.model,
                                                   mixture_share=0)}
        proposals_figure(target, kernels, x0, out / f"fig41_{name}.png")
        log(f"[{name}] wrote fig41_{name}.png (L2 sampler trained {l2.train_time:.1f} s)")
    return rows


def markdown(rows):
    cols = ["target", "sampler", "accept", "grads_per_step", "ess_per_mh", "ess_per_grad", "x0_ess_per_mh",
            "rest_min_ess_per_mh", "x0_lag1_autocorr", "ess_per_5k", "ess_per_s", "arviz_ess_per_mh",
            "max_mean_err_sd", "stuck_chains", "train_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--out", default="results/learned")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="60 training steps per target: a smoke test, not a result")
    p.add_argument("--train-steps", type=int, default=None, help="override the presets' training steps")
    p.add_argument("--precondition", choices=("none", "diag", "dense"), default=None,
                   help="override the presets' preconditioner (BLR: dense; others and the thesis: none)")
    p.add_argument("--width", type=int, default=None, help="override the presets' network width")
    p.add_argument("--batch-size", type=int, default=None, help="override the presets' training batch size")
    p.add_argument("--learned-only", action="store_true",
                   help="train and evaluate the learned sampler alone (no baselines, no figures): for seed and "
                        "setting sweeps")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "log.txt", "a")

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    info = machine()
    log(f"benchmarks/learned_sampler.py {' '.join(sys.argv[1:])} | {info}")
    rows = []
    for name in args.targets.split(","):
        rows += run_target(name, out, log, args)
        import pandas as pd

        pd.DataFrame(rows).to_csv(out / "table.csv", index=False)
        (out / "table.md").write_text(markdown(rows) + "\n")
        (out / "results.json").write_text(json.dumps({"machine": info, "thesis": THESIS, "rows": rows}, indent=1,
                                                     default=float))
    log(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

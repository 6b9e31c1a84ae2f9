"""`entropy-mcmc bench`: RWM, MALA and HMC on the standard targets, and peers on German BLR, in one run.

Our kernels run exactly as `entropy-mcmc sample` runs them (same defaults, through
`entropy_mcmc.samplers.run_chains`). Every row reports min-over-dimensions bulk ESS and
its rates: per MH step (chains x steps), per gradient evaluation (NUTS and ChEES: their leapfrog steps per
chain, `sampling_gradients`), per second of sampling, and per second of warmup + sampling (+ JIT compilation for
JAX peers), with max R-hat, and the process's peak resident memory while the row ran (`peak_rss_mb`). Our German
BLR rows are then divided by each peer's rates.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

TARGETS = ("icg50", "scg2", "funnel1-100", "german", "australian", "heart")
KERNELS = ("rwm", "mala", "hmc")
DEMO_TARGETS = ("german",)
DEMO_KERNELS = ("nuts", "chees-hmc", "hmc", "mala", "rwm")
BASELINES = ("rwm",)  # shown for scale, labelled as such: not a kernel to pick
# the demo's per-kernel (chains, warmup, draws) where the mode's do not fit: NUTS's tree costs ~0.1 s per
# iteration whatever the chains, and 200 + 300 already give it thousands of ESS; MALA needs 500 + 1000 to reach
# R-hat 1.01 on German (R-hat 1.014 at 300 + 500, measured 2026-12-04)
DEMO_SETTINGS = {"nuts": (64, 200, 300), "mala": (64, 500, 1000)}
PEER_NAMES = ("pyro", "blackjax")
HEADLINE = ("german", "hmc")  # the configuration of the performance goal


@dataclass
class Mode:
    chains: int
    warmup: int
    draws: int
    headline_chains: int  # German HMC, the configuration of the performance goal
    headline_warmup: int
    headline_draws: int
    pyro_chains: int
    pyro_warmup: int
    pyro_draws: int
    bj_hmc_chains: int
    bj_warmup: int
    bj_draws: int
    bj_nuts_chains: int
    bj_nuts_warmup: int
    bj_nuts_draws: int


MODES: Dict[str, Mode] = {
    # `make demo`: the kernels a user should pick on German BLR, where they converge, with RWM as the labelled
    # baseline and the peers side by side; about two minutes on 2 cores
    "demo": Mode(64, 300, 500, 256, 300, 500, 1, 150, 200, 256, 300, 500, 4, 300, 500),
    "full": Mode(64, 1000, 2000, 256, 500, 1000, 1, 1000, 2000, 256, 500, 1000, 4, 1000, 2000),
    "quick": Mode(32, 300, 500, 256, 500, 1000, 1, 150, 200, 256, 500, 1000, 4, 300, 500),
    "tiny": Mode(8, 30, 40, 16, 30, 40, 1, 10, 10, 8, 30, 40, 2, 30, 40),
}


def _machine() -> Dict[str, object]:
    info: Dict[str, object] = {"platform": platform.platform(), "python": platform.python_version(),
                               "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("entropy-mcmc", "torch", "arviz", "pyro-ppl", "jax", "blackjax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _metrics(draws, steps_per_chain: int, grads: int, warmup_s: float, sampling_s: float,
             extra_s: float = 0.0) -> Dict[str, float]:
    from ..diagnostics import efficiency

    m = efficiency(draws, steps=draws.shape[0] * steps_per_chain, grad_evals=grads, warmup_time=warmup_s,
                   sampling_time=sampling_s, extra_time=extra_s)
    m.pop("esjd")
    # one chain has no R-hat (it compares chains): judged on its ESS alone
    rhat_ok = draws.shape[0] == 1 or m["max_rhat"] <= 1.01
    m["converged"] = bool(rhat_ok and m["min_ess_bulk"] >= 100 * draws.shape[0])
    return m


def _rhat_text(row) -> str:
    return "R-hat n/a (1 chain)" if row["chains"] == 1 else f"R-hat {row['max_rhat']:.3f}"


def sampling_gradients(result) -> int:
    """Gradient evaluations of a run's sampling phase over all chains: a kernel that reports its leapfrog steps
    per chain (`n_steps`: NUTS, ChEES) counts those, as BlackJAX's peers count theirs; else `num_grad_evals` per
    step times the chains."""
    if "n_steps" in result.stats and result.thin == 1:
        return int(result.stats["n_steps"].sum())
    return result.num_grad_evals * result.num_chains


def _run_ours(target: str, kernel: str, chains: int, warmup: int, draws: int, seed: int,
              mass: Optional[str] = None) -> Dict[str, object]:
    from ..samplers import get_kernel_spec, run_chains

    mass = mass if get_kernel_spec(kernel).capabilities.mass_matrix else None
    result = run_chains(target, kernel, chains=chains, num_warmup=warmup, num_draws=draws, seed=seed, warn=False,
                        **({"adapt_mass": mass} if mass else {}))
    row = {"system": "entropy-mcmc", "target": target, "kernel": kernel.upper(), "chains": chains,
           "warmup": warmup, "draws": draws, "accept": result.acceptance_rate,
           "step_size": float(result.stats["step_size"].float().mean()) if "step_size" in result.stats else None,
           "divergences": result.num_divergences}
    row.update(_metrics(result.draws.detach().cpu().numpy(), result.num_steps, sampling_gradients(result),
                        result.warmup_time, result.sampling_time))
    row.update(warmup_s=result.warmup_time, sampling_s=result.sampling_time, compile_s=0.0)
    steps = _fixed_leapfrog_steps(kernel)
    if steps is not None:
        row["kernel"] = f"{kernel.upper()} L={steps}"
    if mass:
        row["kernel"] += f" ({result.attrs['mass_matrix_choice'].split(' ')[0] or mass} mass)"
    if kernel in BASELINES:
        row["kernel"] += " (baseline)"
    return row


def _peer_row(peer, target: str) -> Dict[str, object]:
    row = {"system": peer.system, "target": target,
           "kernel": peer.kernel + (f" L={peer.settings['num_integration_steps']}"
                                    if "num_integration_steps" in peer.settings else ""),
           "chains": peer.num_chains, "warmup": peer.settings.get("warmup"), "draws": peer.num_draws,
           "accept": peer.acceptance, "step_size": peer.step_size, "divergences": peer.divergences}
    row.update(_metrics(peer.draws, peer.num_draws, peer.num_grad_evals, peer.warmup_time, peer.sampling_time,
                        peer.compile_time))
    row.update(warmup_s=peer.warmup_time, sampling_s=peer.sampling_time, compile_s=peer.compile_time)
    return row


def _markdown(df) -> str:
    try:
        return df.to_markdown(index=False, floatfmt=".4g")
    except ImportError:  # tabulate missing: a fixed-width table in a code block
        return "```\n" + df.to_string(index=False) + "\n```"


def _plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.target} · {r.kernel}" + ("" if r.system == "entropy-mcmc" else f" ({r.system})")
              + ("" if r.converged else f"  [NOT CONVERGED, {_rhat_text(r._asdict())}]") for r in df.itertuples()]
    colors = ["tab:blue" if s == "entropy-mcmc" else "tab:orange" if s == "pyro" else "tab:green"
              for s in df["system"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.32 * len(df) + 1.5), sharey=True)
    y = np.arange(len(df))
    for ax, col, title in ((axes[0], "ess_per_s", "min ESS / s (sampling)"),
                           (axes[1], "ess_per_s_total", "min ESS / s (warmup + sampling [+ compile])")):
        vals = df[col].astype(float).clip(lower=1e-3).to_numpy()
        bars = ax.barh(y, vals, color=colors)
        for bar, ok in zip(bars, df["converged"]):
            if not ok:  # an ESS rate of chains that have not converged means nothing: grey and hatched
                bar.set_color("lightgrey")
                bar.set_hatch("//")
                bar.set_edgecolor("dimgrey")
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("entropy-mcmc bench (blue: ours, orange: Pyro, green: BlackJAX; grey hatched: not converged, "
                 "max R-hat > 1.01 or bulk ESS < 100 per chain)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_benchmark(mode: str = "quick", out_dir: str = "results/bench", seed: int = 0, peers=True,
                  targets: Optional[List[str]] = None, kernels: Optional[List[str]] = None,
                  mass: Optional[str] = None):
    """Run the benchmark, print the tables, and write `bench.csv`, `bench.md`, `ratios.csv`, `bench.json`,
    `bench.png` under `out_dir`. `peers` is True (all), False, or a list of names ("pyro", "blackjax").
    `mass`: the mass matrix every kernel with one adapts ("diag", "dense", "auto"; None: each kernel's default).
    Returns `(table, ratios)` as pandas DataFrames."""
    import pandas as pd

    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    m = MODES[mode]
    targets = list(targets or (DEMO_TARGETS if mode == "demo" else TARGETS))
    kernels = [k.lower() for k in (kernels or (DEMO_KERNELS if mode == "demo" else KERNELS))]
    from ..targets import target_names

    for t in targets:
        if t not in target_names():
            raise ValueError(f"unknown benchmark target {t!r}; known: {', '.join(target_names())}")
    from ..samplers import kernel_names

    for k in kernels:
        if k not in kernel_names():
            raise ValueError(f"unknown benchmark kernel {k!r}; known kernels: {', '.join(kernel_names())}")
    peer_list = list(PEER_NAMES) if peers is True else [] if not peers else list(peers)
    for p in peer_list:
        if p not in PEER_NAMES:
            raise ValueError(f"unknown peer {p!r}; expected some of {', '.join(PEER_NAMES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    machine = _machine()
    print(f"entropy-mcmc bench ({mode}): {len(targets)} targets x {len(kernels)} kernels"
          + (f", peers on German BLR: {', '.join(peer_list)}" if peer_list else ", no peers")
          + f"; {machine.get('cpu_model', '?')}, {machine.get('cpus')} CPUs", flush=True)

    jobs = [(t, k) for t in targets for k in kernels]
    rows: List[Dict[str, object]] = []
    for i, (t, k) in enumerate(jobs, 1):
        if (t, k) == HEADLINE:
            chains, warmup, draws = m.headline_chains, m.headline_warmup, m.headline_draws
        elif mode == "demo" and k in DEMO_SETTINGS:
            chains, warmup, draws = DEMO_SETTINGS[k]
        else:
            chains, warmup, draws = m.chains, m.warmup, m.draws
        t0 = time.perf_counter()
        with peak_rss() as peak:
            row = _run_ours(t, k, chains, warmup, draws, seed, mass)
        row["peak_rss_mb"] = peak["mb"]
        rows.append(row)
        print(f"[{i}/{len(jobs)}] {t:<12} {row['kernel']:<9} {chains} chains x {warmup}+{draws}: "
              f"accept {row['accept']:.2f}, min ESS {row['min_ess_bulk']:.0f}, ESS/grad {row['ess_per_grad']:.3g}, "
              f"ESS/s {row['ess_per_s']:.1f}, {_rhat_text(row)}{'' if row['converged'] else ' NOT CONVERGED'} "
              f"({time.perf_counter() - t0:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MiB)", flush=True)

    notes: List[str] = []
    peer_rows: List[Dict[str, object]] = []
    if peer_list:
        from . import peers as P

        if "pyro" in peer_list:
            t0 = time.perf_counter()
            print(f"[peer] Pyro NUTS on german: {m.pyro_chains} chain(s) x {m.pyro_warmup}+{m.pyro_draws} ...",
                  flush=True)
            with peak_rss() as peak:
                r = P.pyro_nuts("german", m.pyro_warmup, m.pyro_draws, m.pyro_chains, seed=seed)
                peer_rows.append(_peer_row(r, "german"))
            peer_rows[-1]["peak_rss_mb"] = peak["mb"]
            print(f"       min ESS {peer_rows[-1]['min_ess_bulk']:.0f}, ESS/s {peer_rows[-1]['ess_per_s']:.2f}, "
                  f"{_rhat_text(peer_rows[-1])} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        if "blackjax" in peer_list:
            if not P.blackjax_available():
                note = "BlackJAX skipped: jax/blackjax are not installed (pip install 'entropy-mcmc[peers]')"
                notes.append(note)
                print(f"[peer] {note}", flush=True)
            else:
                hmc_l = _fixed_leapfrog_steps("hmc")  # BlackJAX HMC with the length of ours
                for algo, chains, warmup, draws in (("hmc", m.bj_hmc_chains, m.bj_warmup, m.bj_draws),
                                                    ("nuts", m.bj_nuts_chains, m.bj_nuts_warmup, m.bj_nuts_draws)):
                    t0 = time.perf_counter()
                    print(f"[peer] BlackJAX {algo.upper()} on german: {chains} chains x {warmup}+{draws} ...",
                          flush=True)
                    with peak_rss() as peak:
                        r = P.blackjax_run("german", algo, chains, warmup, draws, hmc_l, seed=seed)
                        peer_rows.append(_peer_row(r, "german"))
                    peer_rows[-1]["peak_rss_mb"] = peak["mb"]
                    print(f"       compile {r.compile_time:.1f} s, min ESS {peer_rows[-1]['min_ess_bulk']:.0f}, "
                          f"ESS/s {peer_rows[-1]['ess_per_s']:.1f} ({time.perf_counter() - t0:.1f} s)", flush=True)

    table = pd.DataFrame(rows + peer_rows)
    cols = ["system", "target", "kernel", "chains", "warmup", "draws", "accept", "step_size", "min_ess_bulk",
            "min_ess_tail", "ess_per_mh", "ess_per_grad", "ess_per_s", "ess_per_s_total", "max_rhat",
            "converged", "divergences", "peak_rss_mb", "warmup_s", "sampling_s", "compile_s"]
    table = table[cols]

    ratio_rows = []
    ours_german = [r for r in rows if r["target"] == "german"]
    for r in ours_german:
        for p in peer_rows:
            ratio_rows.append({"ours": r["kernel"], "peer": f"{p['system']} {p['kernel']}",
                               "ess_per_s_ratio": r["ess_per_s"] / p["ess_per_s"],
                               "ess_per_s_total_ratio": r["ess_per_s_total"] / p["ess_per_s_total"],
                               "ess_per_grad_ratio": r["ess_per_grad"] / p["ess_per_grad"]})
    ratios = pd.DataFrame(ratio_rows, columns=["ours", "peer", "ess_per_s_ratio", "ess_per_s_total_ratio",
                                               "ess_per_grad_ratio"])

    import pandas as pd  # noqa: F811 (display options)

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print("\nmin-over-dimensions bulk ESS and its rates (ESS/MH: per chain-step; ESS/s total includes warmup and,"
              " for JAX, compilation); max_rhat is NaN for one chain (R-hat compares chains)")
        print(table.drop(columns=["warmup_s", "sampling_s", "compile_s"]).to_string(index=False))
        if len(ratios):
            print("\nour German BLR kernels / peers (min-ESS per second, same run)")
            print(ratios.to_string(index=False))
    for note in notes:
        print(note)

    elapsed = time.perf_counter() - started
    table.to_csv(out / "bench.csv", index=False)
    ratios.to_csv(out / "ratios.csv", index=False)
    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    md = [f"# entropy-mcmc bench ({mode})", "",
          f"{when}; {machine.get('cpu_model', '?')}, {machine.get('cpus')} CPUs; {elapsed:.0f} s in all.", "",
          _markdown(table), ""]
    if len(ratios):
        md += ["## Our German BLR kernels / peers (min-ESS rates, same run)", "", _markdown(ratios), ""]
    md += [f"- {n}" for n in notes]
    (out / "bench.md").write_text("\n".join(md) + "\n")
    record = {"mode": mode, "date": when, "seed": seed, "elapsed_s": elapsed, "machine": machine,
              "versions": _versions(), "torch_threads": _torch_threads(), "settings": vars(m), "notes": notes,
              "rows": table.to_dict(orient="records"), "ratios": ratios.to_dict(orient="records")}
    (out / "bench.json").write_text(json.dumps(record, indent=1, default=float))
    _plot(table, out / "bench.png")
    print(f"\nwrote {out}/bench.csv, bench.md, ratios.csv, bench.json, bench.png ({elapsed:.0f} s)")
    print(f"the report: {out / 'bench.md'} (table) and {out / 'bench.png'} (plot)")
    return table, ratios


@contextlib.contextmanager
def peak_rss():
    """Yields a dict whose "mb", after the block, is this process's peak resident memory during it in MiB: on
    Linux the high-water mark is reset first (/proc/self/clear_refs); elsewhere it is the peak since the start."""
    out: Dict[str, float] = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    try:
        yield out
    finally:
        if reset:
            status = Path("/proc/self/status").read_text()
            out["mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
        else:
            import resource
            import sys

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, bytes on macOS
            out["mb"] = peak / 2 ** (20 if sys.platform == "darwin" else 10)


def _fixed_leapfrog_steps(kernel: str) -> Optional[int]:
    """The default number of leapfrog steps of a kernel with a fixed one (not tuned during warmup), else None."""
    from ..samplers import get_kernel_spec

    defaults = get_kernel_spec(kernel).defaults()
    return defaults.get("num_steps") if defaults.get("adapt_path_length", "none") == "none" else None


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()

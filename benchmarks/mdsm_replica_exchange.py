"""Does replica exchange put the modes of an MDSM model in the right proportions? The unseen suite's MDSM models,
sampled as `sample-ebm` does (annealed Langevin, then the denoising jump), against the same annealed samples moved on
by replica exchange around MALA on the model's energy at T = 1 (the temperature annealing ends at), then the jump.

    entropy-mcmc bench --experiment unseen --out results/unseen        # trains and samples the models first
    .venv/bin/python benchmarks/mdsm_replica_exchange.py --suite results/unseen [--steps 400 --replicas 8]

For every density folder of the suite: its MDSM checkpoint (`mdsm.pt`) and annealed samples (`mdsm.npz`, whose
`noisy` are the states before the jump), the density rebuilt from the folder's seed, and the suite's scores (MMD
against the two-sample baseline, share of samples in modes, each mode's share against its weight). The replica
exchange adapts its step sizes for the first half of `--steps`; only its last state is kept.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from entropy_mcmc.benchmarks.unseen import make_density, score
from entropy_mcmc.benchmarks.unseen_suite import SETTINGS, reference_and_baseline
from entropy_mcmc.ebm_training.denoising import denoise_jump
from entropy_mcmc.ebm_training.energy_target import EnergyTarget
from entropy_mcmc.cli.common import positive_int, replicas
from entropy_mcmc.ebm_training.trainer import load_model
from entropy_mcmc.samplers import build_kernel, sample


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", required=True, help="output folder of the unseen suite (full settings)")
    ap.add_argument("--steps", type=positive_int, default=400)
    ap.add_argument("--replicas", type=replicas, default=8)
    ap.add_argument("--kernel", default="mala")
    ap.add_argument("--sigma0", type=float, default=0.1, help="the jump's noise level (sample-ebm's default)")
    ap.add_argument("--out", default="results/mdsm_replica_exchange.json")
    args = ap.parse_args()
    suite = Path(args.suite)
    folders = sorted(p for p in suite.iterdir() if (p / "mdsm.pt").is_file()) if suite.is_dir() else []
    if not folders:
        ap.error(f"--suite {args.suite}: no density folder with an mdsm.pt (run the unseen suite with mdsm first)")
    torch.set_num_threads(1)
    rows = []
    for folder in folders:
        kind, seed = folder.name.rsplit("-", 1)
        d = make_density(kind, int(seed))
        saved = np.load(folder / "mdsm.npz")
        n = saved["samples"].shape[0]
        reference, baseline = reference_and_baseline(d, n, SETTINGS["full"]["baseline_seeds"])
        model, state = load_model(str(folder / "mdsm.pt"), "cpu")
        target = EnergyTarget(model.double())
        shift, scale = (state["normalization"][k].double() for k in ("shift", "scale"))
        noisy = (torch.from_numpy(saved["noisy"]).double() - shift) / scale
        t0 = time.perf_counter()
        warmup = args.steps // 2
        kernel = build_kernel(args.kernel, target, num_warmup=warmup, replicas=args.replicas)
        run = sample(kernel, noisy, num_draws=1, num_warmup=warmup, thin=args.steps - warmup, progress=False, seed=1,
                     warn=False)
        moved = denoise_jump(target, run.final_state.position, args.sigma0) * scale + shift
        seconds = time.perf_counter() - t0
        for label, x in (("annealed Langevin (sample-ebm)", saved["samples"]),
                         (f"+ replica exchange ({args.kernel}, R = {args.replicas}, {args.steps} steps)",
                          moved.detach().numpy())):
            s = score(d, np.asarray(x, dtype=np.float64), reference, baseline)
            rows.append({"density": folder.name, "sampler": label, "mmd_ratio": s["mmd_ratio"],
                         "in_modes": s["in_modes"], "share_error": s["share_error"],
                         "shares": "/".join(f"{v:.3f}" for v in s["shares"]),
                         "weights": "/".join(f"{w:.3f}" for w in d.weights),
                         "seconds": None if label.startswith("annealed") else seconds})
            r = rows[-1]
            print(f"{r['density']:<20} {label:<48} MMD {r['mmd_ratio']:6.2f}x, {r['in_modes']:.1%} in modes, "
                  f"shares {r['shares']} (weights {r['weights']}), worst {r['share_error']:.0%}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

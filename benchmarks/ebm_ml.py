"""Maximum-likelihood (PCD) training of energy models with our kernels as negative samplers (thesis section 4.5).

Three measurements, each side by side in one run on one machine:

- `toys`: on each 2-D toy, the same MLP (128 x 3, ELU, eq. B.3 head), batch, standardized data and wall-time
  budget for TorchEBM's persistent contrastive divergence (its `ContrastiveDivergence(persistent=True)` replay
  buffer and `LangevinDynamics`) and for ours with each kernel named in --kernels; MMD (RBF, median bandwidth) and
  mode coverage of --eval-size (10,000) replay-buffer states against as many held-back points, and two floor rows
  (training data, and a second held-back set, against the held-back points: the MMD estimate's noise at that size).
- `images`: Figure 4.3b / C.3 analogue on the 8x8 digits in logit space: the same ResNet energy trained with
  adaptive MALA and with the learned sampler (variant 2, trained alongside), same number of updates and K;
  proposal entropy of each over training, and the classifier Frechet distance (part 1's
  `metrics.fit_feature_classifier`) of the replay buffer against held-out digits over training.
- `cost`: seconds per update, MDSM against ML with MALA / ULA / the learned sampler (K = 30, --k-steps), same
  network and batch (the 2-D MLP, the digits ResNet).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_ml.py toys --seconds 60 --out results/ebm_ml
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_ml.py images --steps 600 --out results/ebm_ml
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_ml.py cost --out results/ebm_ml
    PYTHONPATH=. python benchmarks/ebm_ml.py plot --out results/ebm_ml     # the figure of an `images` run
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

from entropy_mcmc.benchmarks.peers import available, torchebm_energy
from entropy_mcmc.ebm_training import ContrastiveTrainer, MLTrainConfig
from entropy_mcmc.ebm_training.data import TOYS, load_data
from entropy_mcmc.ebm_training.metrics import (classifier_features as features, fit_feature_classifier,
                                               frechet_distance, mmd, mode_coverage)
from entropy_mcmc.ebm_training.networks import MLPEnergy, build_network
from entropy_mcmc.ebm_training.presets import training_preset
from entropy_mcmc.ebm_training.trainer import EBMTrainConfig, EBMTrainer


def torchebm_pcd(x_std, seconds, batch, lr, betas, seed, k_steps, ld_step, buffer_size):
    """TorchEBM 0.8: ContrastiveDivergence(persistent=True) with LangevinDynamics, Adam, for `seconds`."""
    from torchebm.losses import ContrastiveDivergence
    from torchebm.samplers import LangevinDynamics

    torch.manual_seed(seed)
    model = torchebm_energy(MLPEnergy(2, 128, 3))
    sampler = LangevinDynamics(model, step_size=ld_step)
    loss_fn = ContrastiveDivergence(model, sampler, k_steps=k_steps, persistent=True, buffer_size=buffer_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    gen = torch.Generator().manual_seed(seed)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(x_std.shape[0], (batch,), generator=gen)
        opt.zero_grad()
        loss, _ = loss_fn(x_std[idx], generator=gen)
        loss.backward()
        opt.step()
        steps += 1
    return loss_fn.replay_buffer.detach().double(), steps, time.perf_counter() - t0


def ours_pcd(x, seconds, batch, lr, seed, kernel, k_steps, buffer_size, **kw):
    torch.manual_seed(seed)
    trainer = ContrastiveTrainer(MLPEnergy(2, 128, 3), x, MLTrainConfig(
        kernel=kernel, k_steps=k_steps, batch_size=batch, lr=lr, buffer_size=buffer_size, log_every=50, **kw),
        seed=seed)
    t0 = time.perf_counter()
    window = []
    while time.perf_counter() - t0 < seconds:
        try:
            window.append(trainer.update())
        except FloatingPointError as err:  # a run that blows up is reported as such
            trainer.failed = str(err)
            break
        if trainer.step % 50 == 0:
            trainer._log_row(window)
            window = []
    return trainer, time.perf_counter() - t0


def toys(args):
    have_torchebm = available("torchebm")
    if not have_torchebm:
        print("note: torchebm is not installed (pip install -e .[peers]); its PCD rows are skipped", file=sys.stderr)
    rows = []
    for toy in args.toys.split(","):
        x, _ = load_data(toy, num=10000, seed=args.seed)
        n = args.eval_size
        held, _ = load_data(toy, num=n, seed=args.seed + 1000)
        results = {}
        for kernel in args.kernels.split(","):
            kw = {"step_size": args.ula_step} if kernel == "ula" else {}
            trainer, wall = ours_pcd(x, args.seconds, args.batch, args.lr, args.seed, kernel, args.k_steps,
                                     args.buffer_size, **kw)
            buf = trainer.to_data(trainer.buffer.positions[:n].double())
            s = trainer.kernel.step_size_value
            results[f"entropy-mcmc PCD, {kernel}"] = (buf, trainer.step, wall, {
                "step_size": None if s is None else float(s.float().mean()),
                "accept": trainer.history["accept"][-1] if trainer.history["accept"] else None,
                "failed": getattr(trainer, "failed", None)})
        if have_torchebm:
            shift, scale = trainer.shift, trainer.scale
            x_std = ((x.double() - shift) / scale).float()
            buf, steps, wall = torchebm_pcd(x_std, args.seconds, args.batch, args.lr, (0.5, 0.9), args.seed,
                                            args.k_steps, args.torchebm_step, args.buffer_size)
            results["TorchEBM PCD, Langevin"] = (buf[:n] * scale + shift, steps, wall, {})
        for name, (samples, steps, wall, extra) in results.items():
            ok = bool(torch.isfinite(samples).all())  # a run that diverged scores no mode and MMD NaN
            cov = mode_coverage(samples, held) if ok else {"modes": 16}
            rows.append({"toy": toy, "method": name, "mmd": mmd(samples, held) if ok else float("nan"),
                         "covered": cov["covered"] if ok else 0, "modes": cov["modes"], "tv": cov["tv"] if ok else 1,
                         "updates": steps, "seconds": wall, "samples": samples.shape[0], **extra})
            print(json.dumps(rows[-1]), flush=True)
        other, _ = load_data(toy, num=n, seed=args.seed + 2000)
        for name, ref in (("training data", x[:n]), ("second held-back set", other)):
            rows.append({"toy": toy, "method": f"floor: {name} vs held-back data", "mmd": mmd(ref, held),
                         "covered": mode_coverage(ref, held)["covered"], "loadavg": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
        with open(os.path.join(args.out, "toys.json"), "w") as f:  # after every toy
            json.dump(rows, f, indent=1)
    return rows


def _mean(rows, key):
    vals = [r[key] for r in rows if math.isfinite(r[key])]
    return sum(vals) / len(vals) if vals else None


def images(args):
    x, info = load_data("digits")
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(args.seed))
    test_idx, train_idx = perm[:297], perm[297:]
    train, test = x[train_idx], x[test_idx]
    clf = fit_feature_classifier(train, info["labels"][train_idx.numpy()], args.seed)
    f_test = features(clf, test)
    rows = [{"reference": "train vs test", "frechet": frechet_distance(features(clf, train[:297]), f_test)},
            {"reference": "uniform noise vs test",
             "frechet": frechet_distance(features(clf, torch.rand(297, 1, 8, 8, generator=torch.Generator()
                                                                .manual_seed(1), dtype=torch.float64)), f_test)}]
    print(json.dumps(rows[0]), json.dumps(rows[1]), flush=True)
    net, _ = training_preset((1, 8, 8))
    if args.filters:
        net["filters"] = args.filters
    for kernel in args.kernels.split(","):
        torch.manual_seed(args.seed)
        trainer = ContrastiveTrainer(build_network(net), train, MLTrainConfig(
            kernel=kernel, k_steps=args.k_steps, batch_size=args.batch, buffer_size=args.buffer_size, lr=args.lr,
            steps=args.steps, log_every=args.every, sampler_batch=64, sampler_updates=5), seed=args.seed)
        ebm_updates, window = 0, []
        while trainer.step < args.steps:
            r = trainer.update()
            ebm_updates += int(r["ebm_update"])
            window.append(r)
            if trainer.step % args.every == 0:
                h = trainer.negative.proposal_entropy()
                pixels = trainer.to_data(trainer.buffer.positions[torch.randperm(
                    len(trainer.buffer), generator=torch.Generator().manual_seed(trainer.step))[:297]])
                row = {"kernel": kernel, "step": trainer.step, "proposal_entropy": h,
                       "frechet_buffer": frechet_distance(features(clf, pixels.double()), f_test),
                       "step_size": float(trainer.kernel.step_size_value.float().mean()),
                       "ebm_updates": ebm_updates, "accept": _mean(window, "accept"),
                       "sampler_accept": _mean(window, "sampler_accept"), "seconds": trainer.seconds}
                window = []
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.out:
            from entropy_mcmc.ebm_training.plots import image_grid

            image_grid(trainer.to_data(trainer.buffer.positions[:64]).double(),
                       os.path.join(args.out, f"digits_buffer_{kernel}.png"), ncol=8)
    return rows


def plot(args):
    """Figure 4.3b / C.3a,b analogue from `images.json` in --out: proposal entropy and buffer Frechet distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(args.out, "images.json")) as f:
        rows = json.load(f)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for kernel in dict.fromkeys(r["kernel"] for r in rows if "kernel" in r):
        mine = [r for r in rows if r.get("kernel") == kernel]
        ax[0].plot([r["step"] for r in mine], [r["proposal_entropy"] for r in mine], "o-", label=kernel)
        ax[1].plot([r["step"] for r in mine], [r["frechet_buffer"] for r in mine], "o-", label=kernel)
    ref = next(r["frechet"] for r in rows if r.get("reference") == "train vs test")
    ax[1].axhline(ref, color="gray", ls="--", label="train vs test")
    ax[0].set(xlabel="update", ylabel="proposal entropy (nats, 64 dims)")
    ax[1].set(xlabel="update", ylabel="Frechet distance, buffer vs test", yscale="log")
    ax[0].legend()
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "digits_entropy_frechet.png"), dpi=100)
    return rows


def per_update_seconds(trainer, reps):
    trainer.update()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        trainer.update()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def cost(args):
    rows = []
    b = args.batch_given
    cases = {f"mlp 128x3, two-moons, batch {b or 128}": (load_data("two-moons", num=10000)[0], b or 128),
             f"resnet, digits, batch {b or 64}": (load_data("digits")[0], b or 64)}
    for name, (x, batch) in cases.items():
        net, train = training_preset(x.shape[1:])
        torch.manual_seed(0)
        sm = EBMTrainer(build_network(net), x, EBMTrainConfig(batch_size=batch, sigma_min=train["sigma_min"],
                                                              sigma_max=train["sigma_max"]))
        row = {"case": name, "mdsm_s": per_update_seconds(sm, args.reps)}
        for kernel in ("ula", "mala", "learned"):
            torch.manual_seed(0)
            tr = ContrastiveTrainer(build_network(net), x, MLTrainConfig(kernel=kernel, k_steps=args.k_steps,
                                                                         batch_size=batch, buffer_size=1000,
                                                                         sampler_gate=1.0))
            row[f"ml_{kernel}_k{args.k_steps}_s"] = per_update_seconds(tr, args.reps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("toys", "images", "cost", "plot"))
    p.add_argument("--seconds", type=float, default=60.0, help="toys: wall time per method and toy")
    p.add_argument("--toys", default=",".join(TOYS))
    p.add_argument("--kernels", default=None, help="toys: mala,hmc,ula; images: mala,learned")
    p.add_argument("--k-steps", type=int, default=None, help="toys, cost: 30; images: 40 (the thesis)")
    p.add_argument("--batch", type=int, default=None,
                   help="toys: 128; images: 128 (the thesis); cost: 128 for the MLP, 64 for the ResNet")
    p.add_argument("--buffer-size", type=int, default=10000)
    p.add_argument("--eval-size", type=int, default=10000,
                   help="toys: buffer states and held-back points scored (at most --buffer-size)")
    p.add_argument("--lr", type=float, default=None, help="toys: 1e-3; images: 1e-4 (appendix C.2)")
    p.add_argument("--ula-step", type=float, default=0.1, help="our ULA's step s (x' = x - s^2/2 dU + s z)")
    p.add_argument("--torchebm-step", type=float, default=0.005,
                   help="TorchEBM Langevin dt (x' = x - dt dU + sqrt(2 dt) z): 0.005 is our ULA's s = 0.1")
    p.add_argument("--steps", type=int, default=600, help="images: updates per kernel")
    p.add_argument("--every", type=int, default=50, help="images: measure every this many updates")
    p.add_argument("--filters", type=int, default=None, help="images: first filters of the digits ResNet (32)")
    p.add_argument("--reps", type=int, default=7, help="cost: timed updates (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/ebm_ml")
    args = p.parse_args()
    if args.what == "toys" and args.eval_size > args.buffer_size:
        p.error(f"--eval-size ({args.eval_size}) cannot exceed --buffer-size ({args.buffer_size})")
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    images_run = args.what == "images"
    args.kernels = args.kernels or ("mala,learned" if images_run else "mala,hmc,ula")
    args.k_steps = args.k_steps or (40 if images_run else 30)
    args.batch_given, args.batch = args.batch, args.batch or 128
    args.lr = args.lr or (1e-4 if images_run else 1e-3)
    rows = {"toys": toys, "images": images, "cost": cost, "plot": plot}[args.what](args)
    if args.what == "plot":
        return
    with open(os.path.join(args.out, f"{args.what}.json"), "w") as f:
        json.dump(rows, f, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)


if __name__ == "__main__":
    main()

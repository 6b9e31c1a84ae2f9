"""MDSM + annealed Langevin against TorchEBM's denoising score matching + its Langevin sampler on the 2-D toys,
side by side in one run: same MLP (128 x 3, ELU, eq. B.3 head), batch, number of updates, standardized data,
number of sampler steps and chains. Reports MMD (RBF, median bandwidth) and mode coverage against held-back
data, and wall time per update and per sampling run. Also: time per MDSM update against one
maximum-likelihood update with 30 Langevin steps on the same network.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_toys.py --steps 5000 --out results/ebm_toys

`--equal-time` gives TorchEBM the wall seconds ours took (training, then sampling) instead of the same counts.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from entropy_mcmc.benchmarks.peers import available, torchebm_energy
from entropy_mcmc.ebm_training.data import TOYS, load_data
from entropy_mcmc.ebm_training.metrics import mmd, mode_coverage
from entropy_mcmc.ebm_training.networks import MLPEnergy
from entropy_mcmc.ebm_training.plots import scatter_2d
from entropy_mcmc.ebm_training.sampling import sample_ebm
from entropy_mcmc.ebm_training import train_ebm


def torchebm_run(x_std, steps, batch, lr, seed, chains, sample_steps, dsm_sigma, ld_step, train_s=None, sample_s=None):
    """TorchEBM 0.8: DenoisingScoreMatching(noise_scale) + Adam, then LangevinDynamics from N(0, I).

    With `train_s` / `sample_s` it trains, then samples, for those wall seconds instead of `steps` updates and
    `sample_steps` Langevin steps (checked every update, every 50 sampler steps): equal wall time with ours."""
    from torchebm.losses import DenoisingScoreMatching
    from torchebm.samplers import LangevinDynamics

    torch.manual_seed(seed)
    model = torchebm_energy(MLPEnergy(2, 128, 3))
    loss_fn = DenoisingScoreMatching(model, noise_scale=dsm_sigma)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    updates = 0
    while (updates < steps) if train_s is None else (time.perf_counter() - t0 < train_s):
        idx = torch.randint(x_std.shape[0], (batch,), generator=gen)
        opt.zero_grad()
        loss = loss_fn(x_std[idx])
        loss.backward()
        opt.step()
        updates += 1
    spent_train = time.perf_counter() - t0
    sampler = LangevinDynamics(model, step_size=ld_step, noise_scale=1.0)
    t0 = time.perf_counter()
    out = torch.randn(chains, 2, generator=torch.Generator().manual_seed(seed + 1))
    sgen = torch.Generator().manual_seed(seed + 2)
    done = 0
    while (done < sample_steps) if sample_s is None else (time.perf_counter() - t0 < sample_s):
        n = 50 if sample_s is not None else sample_steps
        out = sampler.sample(x=out, n_steps=n, generator=sgen).detach()
        done += n
    return out, spent_train, time.perf_counter() - t0, updates, done


def ml_update_seconds(model, x, k=30, step=0.01, reps=5):
    """One maximum-likelihood update: k unadjusted Langevin steps from noise, then E(data) - E(negatives)."""
    from entropy_mcmc.ebm_training.energy_target import EnergyTarget

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    target = EnergyTarget(model)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        neg = torch.randn_like(x)
        for _ in range(k):
            _, g = target.energy_and_grad(neg)
            neg = neg - 0.5 * step ** 2 * g + step * torch.randn_like(neg)
        opt.zero_grad()
        (model(x).mean() - model(neg).mean()).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chains", type=int, default=2000)
    p.add_argument("--sample-steps", type=int, default=2700)
    p.add_argument("--toys", default=",".join(TOYS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dsm-sigma", type=float, default=0.1, help="TorchEBM DSM noise scale")
    p.add_argument("--ld-step", type=float, default=0.01, help="TorchEBM Langevin step size (eta)")
    p.add_argument("--equal-time", action="store_true",
                   help="TorchEBM trains and samples for the wall seconds ours took, not for the same step counts")
    p.add_argument("--out", default="results/ebm_toys")
    args = p.parse_args()
    if not available("torchebm"):
        raise SystemExit("note: this benchmark compares with TorchEBM, which is not installed "
                         "(pip install -e .[peers]); nothing to run")
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for toy in args.toys.split(","):
        x, _ = load_data(toy, num=10000, seed=args.seed)
        held, _ = load_data(toy, num=args.chains, seed=args.seed + 1000)
        torch.manual_seed(args.seed)
        trainer = train_ebm(MLPEnergy(2, 128, 3), x, "mdsm", seed=args.seed, steps=args.steps,
                            batch_size=args.batch, lr=1e-3, sigma_min=0.05, sigma_max=2.0, progress=False,
                            log_every=args.steps)
        ours = sample_ebm(trainer.model, args.chains, seed=args.seed, anneal_steps=args.sample_steps,
                          progress=False)
        ours_x = trainer.to_data(ours.samples)
        x_std = (x.double() - trainer.shift) / trainer.scale
        budget = (trainer.seconds, ours.seconds) if args.equal_time else (None, None)
        theirs, t_train, t_sample, n_upd, n_smp = torchebm_run(
            x_std.float(), args.steps, args.batch, 1e-3, args.seed, args.chains, args.sample_steps, args.dsm_sigma,
            args.ld_step, *budget)
        theirs_x = trainer.to_data(theirs.double())
        for name, s, tt, ts, nu, ns in (
                ("entropy-mcmc MDSM + annealed Langevin", ours_x, trainer.seconds, ours.seconds, args.steps,
                 args.sample_steps),
                ("TorchEBM DSM + Langevin", theirs_x, t_train, t_sample, n_upd, n_smp)):
            cov = mode_coverage(s, held)
            rows.append({"toy": toy, "method": name, "mmd": mmd(s, held), "covered": cov["covered"],
                         "modes": cov["modes"], "tv": cov["tv"], "train_s": tt, "updates": nu,
                         "ms_per_update": 1000 * tt / nu, "sample_s": ts, "sampler_steps": ns})
            print(json.dumps(rows[-1]), flush=True)
        rows.append({"toy": toy, "method": "held-back data vs training data", "mmd": mmd(x[:args.chains], held)})
        scatter_2d(ours_x, held, os.path.join(args.out, f"{toy}_mdsm.png"), title=toy)
        scatter_2d(theirs_x, held, os.path.join(args.out, f"{toy}_torchebm.png"), title=toy)
    # cost of one MDSM update against one ML update with 30 Langevin steps, same MLP and batch
    x, _ = load_data("two-moons", num=10000)
    torch.manual_seed(0)
    tr = train_ebm(MLPEnergy(2, 128, 3), x, "mdsm", steps=50, batch_size=args.batch, lr=1e-3, progress=False)
    rows.append({"cost": "mlp 128x3, batch %d" % args.batch, "mdsm_update_s": tr.seconds / 50,
                 "ml30_update_s": ml_update_seconds(tr.model, tr.data[:args.batch])})
    print(json.dumps(rows[-1]))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

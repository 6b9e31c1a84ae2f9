"""Time per MDSM update against one maximum-likelihood update with 30 Langevin steps, same network and batch
(thesis section 3.4 footnote: 0.3 s against 3 s per batch for its MNIST ResNet on a GPU).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_cost.py --preset mnist --batch 64 --reps 5
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ebm_toys import ml_update_seconds  # noqa: E402

from entropy_mcmc.ebm_training.losses import NoiseLevels, mdsm_loss  # noqa: E402
from entropy_mcmc.ebm_training.networks import build_network, network_preset  # noqa: E402


def mdsm_update_seconds(model, x, reps):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sig = NoiseLevels.preset("thesis-mnist")(x.shape[0], x)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        opt.zero_grad()
        mdsm_loss(model, x, sig).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_network(network_preset(args.preset))
    x = torch.rand((args.batch,) + tuple(model.event_shape))
    mdsm_update_seconds(model, x, 1)  # warm up
    a = mdsm_update_seconds(model, x, args.reps)
    b = ml_update_seconds(model, x, k=30, reps=args.reps)
    print(json.dumps({"preset": args.preset, "batch": args.batch, "mdsm_update_s": a, "ml30_update_s": b,
                      "ratio": b / a}))


if __name__ == "__main__":
    main()

"""Seconds per NMCE training step (TCR stage: two augmented views, forward and backward) for the thesis' image
rows (Table D.4's backbones, batches and step counts), measured here at a small batch and scaled, to size runs.

    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/nmce_step_cost.py --batch 64 --steps 3

Convolutions cost in proportion to the batch (the coding rate's B x d^2 term is small beside them), so the
full-batch cost is the measured seconds per image times the row's batch. The COIL rows' 5x5 stem with max
pooling halves the 64x64 inputs (128x128 downsampled 2x) before the stages, which `SmallResNet`'s 3x3 stem does
not: they are timed at 32x32. Prints one line per row: measured s/step, s/step at the row's batch, hours for
the row's steps.
"""
from __future__ import annotations

import argparse
import time

import torch

# name: (channels, side, ResNet blocks, first-layer filters, z_dim, batch, steps) from Table D.4 and ch. 5.4;
# CIFAR-10's 600 + 100 + 100 epochs of 50,000 images at batch 1024 are 39,200 steps
ROWS = {"COIL-20 (ResNet-18, 32 filters)": (1, 32, (2, 2, 2, 2), 32, 40, 1440, 2000),
        "COIL-100 (ResNet-10, 32 filters)": (1, 32, (1, 1, 1, 1), 32, 200, 7200, 10000),
        "CIFAR-10 (ResNet-18, 64 filters)": (3, 32, (2, 2, 2, 2), 64, 128, 1024, 39200)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="batch measured (scaled to each row's)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    args = parser.parse_args(argv)
    from entropy_mcmc.clustering import ClusterNetwork
    from entropy_mcmc.clustering.augment import ImageAugment, make_views
    from entropy_mcmc.clustering.coding_rate import tcr_loss
    from entropy_mcmc.clustering.networks import SmallResNet

    torch.manual_seed(0)
    for name, (channels, side, blocks, width, z_dim, batch, steps) in ROWS.items():
        net = ClusterNetwork(SmallResNet(channels, width, blocks), z_dim, 10, pre_feature=4096)  # ch. 5.4
        augment = ImageAugment((side, side))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        x = torch.rand(args.batch, channels, side, side)
        for i in range(args.steps + 1):
            if i == 1:
                t0 = time.perf_counter()
            views = make_views(x, augment)
            z, _ = net(views.flatten(0, 1))
            loss = tcr_loss(z.view(2, args.batch, -1)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        per_step = (time.perf_counter() - t0) / args.steps
        full = per_step * batch / args.batch
        print(f"{name}: {per_step:.2f} s/step at batch {args.batch}; {full:.1f} s/step at batch {batch}; "
              f"{full * steps / 3600:.1f} h for {steps} steps", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

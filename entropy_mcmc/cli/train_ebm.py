"""`entropy-mcmc train-ebm`: train an energy model by score matching (thesis ch. 3; MDSM by default).

    entropy-mcmc train-ebm --data two-moons --loss mdsm --steps 5000 --seed 0 --out moons.pt
    entropy-mcmc train-ebm --data digits --out digits.pt            # ResNet energy, CPU-scale settings
    entropy-mcmc train-ebm --data ../shared/data/mnist --scale thesis --device cuda --out mnist.pt
    torchrun --nproc_per_node 2 -m entropy_mcmc.cli train-ebm --data two-moons --out moons.pt

`--data` is a built-in name (eight-gaussians, two-moons, swiss-roll, checkerboard, rings, digits, mnist), a
folder of MNIST IDX files, or a `.npy` array `[n, *event]`; the network follows the data's shape.
A CSV log goes next to `--out` (`.csv`); `--resume` continues a checkpoint bitwise.
"""
from __future__ import annotations

import argparse
import os
import time

from . import common

HELP = "train an energy model by score matching (MDSM, DSM, exact or sliced) on 2-D points or images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="built-in data name, MNIST IDX folder, or a .npy array [n, *event]")
    parser.add_argument("--out", required=True, metavar="PATH", help="checkpoint to write (.pt)")
    parser.add_argument("--loss", choices=("mdsm", "dsm", "esm", "ssm"), default="mdsm",
                        help="mdsm: eq. 3.7 (default); dsm: one level sigma0 (eq. 3.3); esm: exact score matching "
                             "(low dimensions); ssm: sliced score matching")
    parser.add_argument("--steps", type=common.positive_int, default=None, help="optimizer updates (total)")
    parser.add_argument("--seed", type=common.seed, default=0)
    parser.add_argument("--scale", choices=("cpu", "thesis"), default="cpu",
                        help="cpu: minutes on a CPU (default); thesis: section 3.4's batch, learning rate, network "
                             "and 100k updates (a GPU job)")
    parser.add_argument("--num", type=common.positive_int, default=None, help="use the first NUM data points")
    parser.add_argument("--batch-size", type=common.positive_int, default=None)
    parser.add_argument("--lr", type=common.positive_float, default=None, help="Adam learning rate")
    parser.add_argument("--sigma0", type=common.positive_float, default=0.1, help="sigma_0 of eq. 3.7 (0.1)")
    parser.add_argument("--sigma-min", type=common.positive_float, default=None)
    parser.add_argument("--sigma-max", type=common.positive_float, default=None)
    parser.add_argument("--spacing", choices=("linear", "geometric"), default=None)
    parser.add_argument("--width", type=common.positive_int, default=None, help="MLP width or ResNet first filters")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", type=common.device, default="cpu")
    parser.add_argument("--log", default=None, metavar="CSV", help="CSV log (default: --out with .csv)")
    parser.add_argument("--log-every", type=common.positive_int, default=50)
    parser.add_argument("--checkpoint-every", type=common.nonneg_int, default=500)
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint at --out up to --steps")
    parser.add_argument("--threads", type=common.nonneg_int, default=1, help="torch threads; 0: torch's default")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import torch

    from ..ebm_training.data import load_data
    from ..ebm_training.networks import build_network
    from ..ebm_training.presets import training_preset
    from ..ebm_training.trainer import EBMTrainConfig, EBMTrainer

    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank probes the output path
        common.check_writable_file(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and not os.path.exists(args.out):
        raise common.UsageError(f"--resume: no checkpoint at {args.out}")
    data, info = load_data(args.data, num=args.num, seed=args.seed)
    log = args.log or os.path.splitext(args.out)[0] + ".csv"
    if args.resume:
        trainer = EBMTrainer.resume(args.out, data, device=args.device, steps=args.steps)
    else:
        net, train = training_preset(data.shape[1:], args.scale)
        if args.width:
            net["width" if net["kind"] == "mlp" else "filters"] = args.width
        for key in ("steps", "batch_size", "lr", "sigma_min", "sigma_max", "spacing"):
            if getattr(args, key) is not None:
                train[key] = getattr(args, key)
        config = EBMTrainConfig(loss=args.loss, sigma0=args.sigma0, dtype=args.dtype, log_every=args.log_every,
                                checkpoint_every=args.checkpoint_every, **train)
        torch.manual_seed(args.seed)
        model = build_network(net)
        trainer = EBMTrainer(model, data, config, seed=args.seed, device=args.device,
                             data_info={"name": info["name"], "kind": info["kind"]})
        if trainer.rank == 0 and os.path.exists(log):
            os.remove(log)
    c = trainer.config
    if trainer.rank == 0:
        print(f"entropy-mcmc train-ebm: {info['name']} {list(data.shape)}, {trainer.model.config['kind']} network "
              f"({sum(p.numel() for p in trainer.model.parameters())} weights), {c.loss} loss, sigma in "
              f"[{c.sigma_min:g}, {c.sigma_max:g}] {c.spacing}, sigma0 {c.sigma0:g}, batch {c.batch_size}, lr "
              f"{c.lr:g}, {c.steps} steps from step {trainer.step}, {trainer.world_size} process(es), "
              f"{args.device} {c.dtype}, seed {trainer.seed}", flush=True)
    t0 = time.perf_counter()
    trainer.train(progress=not args.no_progress, log_path=log, checkpoint_path=args.out)
    if trainer.rank == 0:
        h = trainer.history
        print(f"trained in {time.perf_counter() - t0:.1f} s ({1000 * trainer.seconds / max(trainer.step, 1):.1f} ms "
              f"per update); last loss {h['loss'][-1]:.4g}, mean energy of data {h['energy_data'][-1]:.4g}")
        print(f"wrote {args.out} and {log}")
    return 0

"""`entropy-mcmc train-ebm`: train an energy model by score matching (thesis ch. 3; MDSM by default) or by
maximum likelihood with a kernel as negative sampler (`--loss ml`, thesis section 4.5).

    entropy-mcmc train-ebm --data two-moons --loss mdsm --steps 5000 --seed 0 --out moons.pt
    entropy-mcmc train-ebm --data two-moons --loss ml --kernel mala --k-steps 30 --out moons-ml.pt
    entropy-mcmc train-ebm --data digits --loss ml --kernel learned --k-steps 40 --out digits-ml.pt
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

HELP = ("train an energy model by score matching (MDSM, DSM, exact or sliced) or by maximum likelihood with a "
        "kernel as negative sampler (--loss ml) on 2-D points or images")


HOLDOUT = common.checked(float, lambda v: 0.0 <= v < 0.5, "expected a number in [0, 0.5)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="built-in data name, MNIST IDX folder, or a .npy array [n, *event]")
    parser.add_argument("--out", required=True, metavar="PATH", help="checkpoint to write (.pt)")
    parser.add_argument("--loss", choices=("mdsm", "dsm", "esm", "ssm", "ml"), default="mdsm",
                        help="mdsm: eq. 3.7 (default); dsm: one level sigma0 (eq. 3.3); esm: exact score matching "
                             "(low dimensions); ssm: sliced score matching; ml: maximum likelihood, persistent "
                             "contrastive divergence with --kernel as negative sampler")
    ml = parser.add_argument_group("maximum likelihood (--loss ml)")
    ml.add_argument("--kernel", type=common.real_kernel, default="mala",
                    help="negative sampler: a registry kernel (ula, mala, hmc, "
                    "annealed-langevin, rwm, a plug-in) or learned (variant 2, trained alongside); default mala")
    ml.add_argument("--k-steps", type=common.nonneg_int, default=30, help="kernel steps per update (30)")
    ml.add_argument("--buffer-size", type=common.positive_int, default=10000, help="replay buffer states (10000)")
    ml.add_argument("--reinit-fraction", type=common.unit_interval, default=0.05,
                    help="share of each draw re-initialized from noise (0.05)")
    ml.add_argument("--persistent", action=argparse.BooleanOptionalAction, default=True,
                    help="persistent chains from the replay buffer (default); --no-persistent: CD-K from the data")
    ml.add_argument("--energy-penalty", type=common.nonneg_float, default=0.001,
                    help="alpha of the squared-energy penalty (0.001; 0: the unbiased ML gradient)")
    ml.add_argument("--step-size", type=common.positive_float, default=None,
                    help="the kernel's initial step size (default: the registry's)")
    ml.add_argument("--target-accept", type=common.probability, default=0.6,
                    help="acceptance the step size (or the learned sampler) aims at (0.6)")
    ml.add_argument("--replicas", type=common.replicas, default=None,
                    help="run the kernel inside replica exchange with R temperatures (geometric up to "
                         "--max-temperature), each with its own adapted step size: negatives with the model's mode "
                         "weights; sample-ebm then samples the same way")
    ml.add_argument("--max-temperature", type=common.max_temperature, default=None,
                    help="with --replicas: the hottest temperature of the ladder (30)")
    parser.add_argument("--steps", type=common.positive_int, default=None,
                        help="the most optimizer updates (total); training ends earlier on a plateau of the "
                             "validation criterion or when --time-budget is spent")
    stop = parser.add_argument_group("when training ends")
    stop.add_argument("--holdout", type=HOLDOUT, default=0.1,
                      help="share of the points held out for the validation criterion (0.1; 0: no early stop)")
    stop.add_argument("--patience", type=common.nonneg_int, default=10,
                      help="validation checks (one per --log-every updates) without improvement before stopping "
                           "(10; 0: never on a plateau)")
    stop.add_argument("--min-delta", type=common.unit_interval, default=0.005,
                      help="relative improvement that counts (0.005)")
    stop.add_argument("--time-budget", type=common.positive_float, default=None, metavar="SECONDS",
                      help="stop once this much training time is spent (default: the preset's: 300 s for points, "
                           "900 s for images at --scale cpu, none at --scale thesis)")
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
    from ..ebm_training.contrastive import ContrastiveTrainer, MLTrainConfig
    from ..ebm_training.trainer import EBMTrainConfig, EBMTrainer, load_checkpoint

    log = args.log or os.path.splitext(args.out)[0] + ".csv"
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank probes the output paths
        common.check_writable_file(args.out)
        common.check_writable_file(log, "--log")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and not os.path.exists(args.out):
        raise common.UsageError(f"--resume: no checkpoint at {args.out}")
    ladder = _ladder(args)
    data, info = load_data(args.data, num=args.num, seed=args.seed)
    if args.resume:
        ml = load_checkpoint(args.out)["config"]["loss"] == "ml"
        trainer = (ContrastiveTrainer if ml else EBMTrainer).resume(args.out, data, device=args.device,
                                                                    steps=args.steps)
    else:
        net, train = training_preset(data.shape[1:], args.scale)
        if args.width is not None:
            net["width" if net["kind"] == "mlp" else "filters"] = args.width
        for key in ("steps", "batch_size", "lr", "sigma_min", "sigma_max", "spacing"):
            if getattr(args, key) is not None:
                train[key] = getattr(args, key)
        if args.time_budget is not None:
            train["time_budget"] = args.time_budget
        common_args = dict(dtype=args.dtype, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                           holdout=args.holdout, patience=args.patience, min_delta=args.min_delta)
        info_args = dict(seed=args.seed, device=args.device, data_info={"name": info["name"], "kind": info["kind"]})
        torch.manual_seed(args.seed)
        model = build_network(net)
        if args.loss == "ml":
            for key in ("sigma_min", "sigma_max", "spacing"):
                train.pop(key)
            if args.lr is None and len(data.shape) > 2:
                train["lr"] = 1e-4  # appendix C.2
            config = MLTrainConfig(kernel=args.kernel, k_steps=args.k_steps, buffer_size=args.buffer_size,
                                   reinit_fraction=args.reinit_fraction, persistent=args.persistent,
                                   energy_penalty=args.energy_penalty, step_size=args.step_size,
                                   target_accept=args.target_accept, kernel_options=ladder,
                                   **common_args, **train)
            trainer = ContrastiveTrainer(model, data, config, **info_args)
        else:
            config = EBMTrainConfig(loss=args.loss, sigma0=args.sigma0, **common_args, **train)
            trainer = EBMTrainer(model, data, config, **info_args)
        if trainer.rank == 0 and os.path.exists(log):
            os.remove(log)
    c = trainer.config
    if trainer.rank == 0 and c.loss == "ml":
        print(f"entropy-mcmc train-ebm: {info['name']} {list(data.shape)}, {trainer.model.config['kind']} network "
              f"({sum(p.numel() for p in trainer.model.parameters())} weights), ml loss, kernel {c.kernel} "
              f"({trainer.negative.name}), {c.k_steps} steps per update, buffer "
              f"{c.buffer_size if c.persistent else 0}, batch {c.batch_size}, lr {c.lr:g}, {c.steps} steps from step "
              f"{trainer.step}, {trainer.world_size} process(es), {args.device} {c.dtype}, seed {trainer.seed}",
              flush=True)
    elif trainer.rank == 0:
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
              f"per update); last loss {h['loss'][-1]:.4g}, mean energy of data {h['energy_data'][-1]:.4g}"
              + (f", of negatives {h['energy_neg'][-1]:.4g}, acceptance {h['accept'][-1]:.3f}" if c.loss == "ml"
                 else ""))
        print(f"stopped at update {trainer.step}: {trainer.stop_reason or 'the most updates (--steps) done'}"
              + (f"; best validation criterion {trainer.best_val:.4g}" if trainer.val_data is not None else ""))
        print(f"wrote {args.out} and {log}")
    return 0


def _ladder(args) -> dict:
    """`--replicas` and `--max-temperature` as the kernel's options (`build_kernel`)."""
    from ..samplers.registry import get_kernel_spec

    if args.loss != "ml" and (args.replicas or args.max_temperature):
        raise common.UsageError("--replicas and --max-temperature apply to --loss ml")
    if args.max_temperature is not None and args.replicas is None:
        raise common.UsageError("--max-temperature sets the ladder of --replicas: give --replicas too")
    if args.replicas is not None and get_kernel_spec(args.kernel).capabilities.trainable:
        raise common.UsageError(f"--kernel {args.kernel} is trained in the loop for the model itself (b = 1): it "
                                "cannot run inside replica exchange (--replicas)")
    return {k: v for k, v in (("replicas", args.replicas), ("max_temperature", args.max_temperature)) if v is not None}

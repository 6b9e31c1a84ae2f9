"""`entropy-mcmc train-sampler`: train the learned sampler (thesis ch. 4) on a registry target.

    entropy-mcmc train-sampler --target german --out german.pt --seed 0 [--steps N] [--batch-size B]
    entropy-mcmc sample --target german --kernel learned --sampler german.pt --chains 64 --warmup 0 \
        --draws 2000 --seed 0 --out draws.nc

Uses the Table C.1 settings of the target scaled to a 2-core CPU (`presets.preset(target, "cpu")`;
`--scale thesis` for the thesis' batch and steps).
"""
from __future__ import annotations

import argparse
import time

from . import common

HELP = ("train the learned sampler (thesis ch. 4) on a registry target with its Table C.1 settings scaled to a CPU; "
        "write it for `sample --kernel learned --sampler PATH`")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, type=common.target_name,
                        help="registry name (icg50, scg2, funnel1-100, funnel3-20, german, australian, heart, ...)")
    parser.add_argument("--out", required=True, metavar="PATH", help="where to write the trained sampler (.pt)")
    parser.add_argument("--seed", type=common.seed, default=0,
                        help="seeds the weights, the masks and the training draws")
    parser.add_argument("--scale", choices=("cpu", "thesis"), default="cpu",
                        help="cpu: Table C.1 settings with batch, steps (and funnel widths) cut to minutes on a "
                             "2-core CPU (default); thesis: the thesis' batch 8192 x 5000 steps (a GPU job)")
    parser.add_argument("--steps", type=common.positive_int, default=None, help="optimizer steps (override)")
    parser.add_argument("--batch-size", type=common.positive_int, default=None, help="batch size (override)")
    parser.add_argument("--width", type=common.positive_int, default=None, help="MLP width (override)")
    parser.add_argument("--flow-steps", type=common.positive_int, default=None, dest="num_steps",
                        help="z-update steps N of the coupling flow (override)")
    parser.add_argument("--target-accept", type=common.probability, default=None, help="acceptance beta aims at")
    parser.add_argument("--lr", type=common.positive_float, default=None, help="initial learning rate (override)")
    parser.add_argument("--eps", type=common.positive_float, default=None, help="scale eps of x' = x + eps z (0.1)")
    parser.add_argument("--variant", choices=("full", "no_grad", "langevin"), default=None,
                        help="full model (default) or an appendix C.1 ablation")
    parser.add_argument("--precondition", choices=("none", "diag", "dense"), default=None,
                        help="run the flow in coordinates whitened by a mean and scale (diag) or covariance "
                             "(dense) fitted to the warm buffer or exact samples before training (default "
                             "none, as in the thesis)")
    parser.add_argument("--objective", choices=("entropy", "l2"), default=None,
                        help="proposal entropy (default) or expected squared jump")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None)
    parser.add_argument("--threads", type=common.nonneg_int, default=1,
                        help="torch intra-op threads; 0: torch's default (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from ..learning import preset, train_sampler
    from ..targets import get_target

    common.check_writable_file(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    target = get_target(args.target)
    overrides = {k: getattr(args, k) for k in ("steps", "batch_size", "width", "num_steps", "target_accept", "lr",
                                               "eps", "variant", "precondition", "objective", "dtype")}
    model_cfg, train_cfg = preset(target, args.scale, mask_seed=args.seed, **overrides)
    print(f"entropy-mcmc train-sampler: {target.name} (d={target.dim}), {model_cfg.variant} model, width "
          f"{model_cfg.width}, N={model_cfg.num_steps}, eps={model_cfg.eps:g}, preconditioner "
          f"{model_cfg.precondition}; {train_cfg.objective} objective, "
          f"batch {train_cfg.batch_size} x {train_cfg.steps} steps, target acceptance {train_cfg.target_accept}, "
          f"lr {train_cfg.lr:g} -> {train_cfg.min_lr:g}, seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    result = train_sampler(target, config=train_cfg, model_config=model_cfg, seed=args.seed,
                           progress=not args.no_progress)
    result.save(args.out, command=common.command_line(), seed=args.seed)
    f = result.final
    print(f"trained in {time.perf_counter() - t0:.1f} s ({result.sample_source} samples); last 10% of steps: "
          f"acceptance {f['accept']:.3f}, beta {f['beta']:.3g}, proposal entropy {f['entropy']:.2f} nats "
          f"(MALA at eps: {result.history['entropy'][0]:.2f}); skipped steps {result.skipped_steps}")
    print(f"wrote {args.out}")
    return 0

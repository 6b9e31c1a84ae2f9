"""NMCE on the double spiral (thesis Figure 5.1) with one NMCE stage, optionally after a TCR stage.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_spiral.py --steps 1000 --lam 4000 --noise 0.05
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_spiral.py --tcr-steps 1000 --steps 300 --restarts 8

`--restarts R` (needs `--tcr-steps`) trains the NMCE stage R times with new heads on the frozen TCR backbone
and keeps the run with the largest rate reduction (no labels); every restart's ACC is printed as well.

Prints the settings, the wall time and ACC/NMI/ARI; `--out` keeps the log, checkpoint and a scatter plot.
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="NMCE steps")
    parser.add_argument("--tcr-steps", type=int, default=0, help="TCR steps before (0: NMCE only, as the thesis)")
    parser.add_argument("--lam", type=float, default=4000.0)
    parser.add_argument("--noise", type=float, default=0.05, help="Gaussian augmentation")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--gamma-warmup", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--restarts", type=int, default=1, help="NMCE stage restarts on the frozen TCR backbone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from entropy_mcmc.clustering import ClusterNetwork, MLPBackbone, NMCETrainer, Stage, NMCETrainConfig, double_spiral
    from entropy_mcmc.clustering.augment import GaussianNoise
    from entropy_mcmc.clustering.figures import plot_points
    from entropy_mcmc.clustering.metrics import clustering_scores
    from entropy_mcmc.clustering.training import embed

    data = double_spiral(4096, seed=args.seed)
    torch.manual_seed(args.seed)
    net = ClusterNetwork(MLPBackbone(2, args.width, 4), 6, 2)
    if args.restarts > 1 and not args.tcr_steps:
        parser.error("--restarts needs --tcr-steps (the restarts share the TCR-trained backbone)")
    restart_kw = dict(reset_heads=True, train_backbone=False, restarts=args.restarts) if args.restarts > 1 else {}
    stages = [Stage("nmce", args.steps, lr=args.lr, lam=args.lam, gamma_warmup=args.gamma_warmup, **restart_kw)]
    if args.tcr_steps:
        stages.insert(0, Stage("tcr", args.tcr_steps, lr=args.lr, lam=args.lam))
    trainer = NMCETrainer(net, GaussianNoise(args.noise), NMCETrainConfig(stages=stages, batch_size=args.batch_size,
                                                                      seed=args.seed), out_dir=args.out,
                          progress=False)
    t0 = time.perf_counter()
    score = trainer.restart_score

    def report(x, stage):
        value = score(x, stage)
        acc = clustering_scores(data.y, embed(net, x)[1].argmax(1))["acc"]
        print(f"restart {trainer.restart}: rate reduction {value:.3f}, ACC {acc:.3f}", flush=True)
        return value

    trainer.restart_score = report
    trainer.fit(data.x)
    _, logits = embed(net, data.x)
    scores = clustering_scores(data.y, logits.argmax(1))
    if args.out:
        plot_points(data.x, logits.argmax(1), f"{args.out}/clusters.png", f"ACC {scores['acc']:.3f}")
    print(json.dumps({**vars(args), **scores, "seconds": time.perf_counter() - t0,
                      "restart_scores": trainer.restart_scores}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

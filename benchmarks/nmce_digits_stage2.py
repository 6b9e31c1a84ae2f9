"""Stage 2 of NMCE on the 8x8 digits from one fixed stage-1 network: how much the partition depends on the
heads' initialization and on the stage-2 settings (the evidence behind `n_init` and eps^2 0.1).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_digits_stage2.py --seed 2 r=1 r=2 eps=0.1,r=1 eps=0.1,r=2

Stage 1 is the default TCR stage (300 steps, lambda 50, eps^2 0.01), cached under `--out`. Each spec is a
comma-separated list of `r=` (head seed, the stage's run seed is 100 x seed + r), `eps=` (eps^2), `gw=` (gamma
warm-up steps, default 100), `bs=` (batch), `lam=`, `tau=`, `steps=`, and the flags `const` (no learning-rate
decay) and `bntrain` (batch-norm statistics of the batch instead of stage 1's). Prints the stage-2 rate reduction
Delta R on all points (the unsupervised selection score) next to ACC, NMI and ARI (labels used for reporting only).
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/nmce-digits-stage2")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from entropy_mcmc.clustering import clustering_scores, load_digits
    from entropy_mcmc.clustering.experiment import build, prepare
    from entropy_mcmc.clustering.training import NMCETrainer, Stage, NMCETrainConfig, embed, three_stages

    data = load_digits()
    x = prepare(data)
    torch.manual_seed(args.seed)
    net, augment = build(data, x, 10, None, "mlp", 256, 0.05)
    cache = Path(args.out) / f"stage1-seed{args.seed}.pt"
    if cache.exists():
        net.load_state_dict(torch.load(cache))
    else:
        tcr = three_stages((300, 300, 500), lam=50.0)[0]
        NMCETrainer(net, augment, NMCETrainConfig(stages=[tcr], tau=0.5, seed=args.seed), progress=False).fit(x)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), cache)
    start = copy.deepcopy(net.state_dict())
    for spec in args.specs:
        opts = dict(kv.split("=") for kv in spec.split(",") if "=" in kv)
        flags = {kv for kv in spec.split(",") if "=" not in kv}
        net.load_state_dict(start)
        net.pre_feature.__dict__.pop("eval", None)
        if "bntrain" in flags:
            net.pre_feature.eval = lambda: net.pre_feature
        stage = Stage("nmce", int(opts.get("steps", 300)), lam=float(opts.get("lam", 50)), train_backbone=False,
                      reset_heads=True, gamma_warmup=int(opts.get("gw", 100)))
        if "const" in flags:
            stage.lr_factor = lambda step: 1.0
        config = NMCETrainConfig(stages=[stage], tau=float(opts.get("tau", 0.5)), batch_size=int(opts.get("bs", 1024)),
                             eps_sq=float(opts.get("eps", 0.01)), seed=args.seed * 100 + int(opts.get("r", 1)))
        t0 = time.perf_counter()
        trainer = NMCETrainer(net, augment, config, progress=False)
        trainer.fit(x)
        score = trainer.restart_score(x, stage)
        scores = clustering_scores(data.y, embed(net, x)[1].argmax(1))
        print(f"seed {args.seed} {spec:24s} Delta R {score:.3f} ACC {scores['acc']:.3f} NMI {scores['nmi']:.3f} "
              f"ARI {scores['ari']:.3f} {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

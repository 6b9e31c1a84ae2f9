"""Thesis Fig. 2.1a, measured: the CAP-RBM with and without the amplitude coupling J on the bars data.

    .venv/bin/python benchmarks/caprbm_bars.py [--train 40000 --epochs 10 --hidden 200] [--out results/caprbm_bars]
    .venv/bin/python benchmarks/caprbm_bars.py --quick      # a smoke run in seconds

Both models are trained with CD-1 on the same images (appendix A.3: 40,000 examples, 10 epochs; the
hidden layer size is not given in the thesis, 200 here), then block Gibbs chains start at held-out
test images and, after 1, 10, 100 and 1000 steps, the visible rates are compared with the images
(`entropy_mcmc.ebm_training.rbm.stability`: overlap of active pixels, circular phase error on the
bars after removing the global phase, phase coherence). Writes `metrics.csv`, `metrics.md`,
`bars_grid.png` (the figure: data row, then rates after each number of steps, per model), the
two checkpoints and their training logs under `--out`.
"""
import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

from entropy_mcmc.ebm_training import CAPRBM
from entropy_mcmc.ebm_training.rbm.bars import make_bars
from entropy_mcmc.ebm_training.rbm.stability import gibbs_stability, plot_stability_grid
from entropy_mcmc.ebm_training.rbm.training import RBMTrainConfig, Trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=40000, help="training images (thesis: 40000)")
    p.add_argument("--test", type=int, default=200, help="held-out images the chains start from")
    p.add_argument("--epochs", type=int, default=10, help="CD-1 epochs (thesis: 10)")
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--steps", default="1,10,100,1000", help="Gibbs steps at which the rates are measured")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    p.add_argument("--out", default="results/caprbm_bars")
    a = p.parse_args(argv)
    if a.quick:
        a.train, a.test, a.epochs, a.hidden, a.steps = 400, 16, 1, 32, "1,10"
    torch.set_num_threads(a.threads)
    steps = tuple(int(s) for s in a.steps.split(","))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = make_bars(a.train, seed=a.seed)
    test = make_bars(a.test, seed=a.seed + 10_000)
    rows, blocks = [], []
    for coupling in (False, True):
        name = "with J" if coupling else "without J"
        model = CAPRBM(576, a.hidden, coupling=coupling, seed=a.seed)
        cfg = RBMTrainConfig(epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.lr, momentum=a.momentum,
                          seed=a.seed)
        tag = "J" if coupling else "noJ"
        log = out / f"train_{tag}.csv"
        log.unlink(missing_ok=True)
        t0 = time.perf_counter()
        trainer = Trainer(model, cfg)
        trainer.fit(data, checkpoint=out / f"bars_{tag}.pt", log=log)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics, snaps = gibbs_stability(model, test, steps=steps, seed=a.seed + 1, keep=8)
        gibbs_s = time.perf_counter() - t0
        last = trainer.history[-1]
        for m in metrics:
            rows.append({"model": name, **m, "train_s": round(train_s, 1), "gibbs_s": round(gibbs_s, 1),
                         "recon_error": round(last["reconstruction_error"], 2),
                         "hidden_activity": round(last["hidden_activity"], 3)})
        blocks.append((f"CAP-RBM {name}", test[:8], snaps, steps))
        print(f"{name}: trained {train_s:.0f} s, Gibbs {gibbs_s:.0f} s", flush=True)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| model | Gibbs steps | overlap of active pixels | phase error on bars (rad) | phase coherence |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['model']} | {r['steps']} | {r['overlap']:.3f} | {r['phase_error']:.3f} | {r['coherence']:.3f} |"
              for r in rows]
    (out / "metrics.md").write_text("\n".join(lines) + "\n")
    (out / "settings.json").write_text(json.dumps(vars(a), indent=1))
    plot_stability_grid(blocks, out / "bars_grid.png")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

"""Bernoulli RBM side by side with scikit-learn's `BernoulliRBM` on the 8x8 digits, in one run.

    .venv/bin/python benchmarks/rbm_digits.py [--seeds 10] [--out results/rbm_digits]

Same settings for both (scikit-learn's RBM example: 100 hidden units, learning rate 0.06, batch 10,
10 epochs of persistent CD; pixels scaled to [0, 1]); 80% of the 1797 digits train, 20% are held
out. For each seed: time per epoch (fit time / epochs) and the held-out pseudo-log-likelihood, the
exact one (every bit flipped in turn) evaluated by the same function on both models' parameters.
Writes `results.csv` and `results.md` under `--out`.
"""
import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch


def exact_pseudo_likelihood(components, intercept_hidden, intercept_visible, X) -> float:
    from entropy_mcmc.ebm_training import RBM

    m = RBM(components.shape[1], components.shape[0], dtype=torch.float64)
    with torch.no_grad():
        m.W.copy_(torch.as_tensor(components.T))
        m.hidden_bias.copy_(torch.as_tensor(intercept_hidden))
        m.visible_bias.copy_(torch.as_tensor(intercept_visible))
        return float(m.pseudo_log_likelihood(torch.as_tensor(X, dtype=torch.float64)).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.06)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs (smoke test)")
    p.add_argument("--out", default="results/rbm_digits")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs = 2, 2
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    from sklearn.neural_network import BernoulliRBM as SklearnRBM

    from entropy_mcmc.ebm_training import BernoulliRBM

    X = load_digits().data / 16.0
    order = np.random.RandomState(0).permutation(len(X))
    cut = int(0.8 * len(X))
    train, held_out = X[order[:cut]], X[order[cut:]]
    rows = []
    for seed in range(a.seeds):
        for name, cls in (("scikit-learn BernoulliRBM", SklearnRBM), ("entropy_mcmc BernoulliRBM", BernoulliRBM)):
            rbm = cls(n_components=a.hidden, learning_rate=a.lr, batch_size=a.batch_size, n_iter=a.epochs,
                      random_state=seed)
            t0 = time.perf_counter()
            rbm.fit(train)
            per_epoch = (time.perf_counter() - t0) / a.epochs
            pl = exact_pseudo_likelihood(rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_, held_out)
            rows.append({"model": name, "seed": seed, "ms_per_epoch": 1000 * per_epoch, "held_out_pl": pl})
            print(f"seed {seed} {name}: {1000 * per_epoch:.1f} ms/epoch, held-out pseudo-log-likelihood {pl:.3f}",
                  flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| model | ms per epoch (median) | held-out pseudo-log-likelihood (mean ± sd over seeds) |",
             "| --- | ---: | ---: |"]
    for name in dict.fromkeys(r["model"] for r in rows):
        ms = np.array([r["ms_per_epoch"] for r in rows if r["model"] == name])
        pl = np.array([r["held_out_pl"] for r in rows if r["model"] == name])
        lines.append(f"| {name} | {np.median(ms):.1f} | {pl.mean():.2f} ± {pl.std(ddof=1):.2f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

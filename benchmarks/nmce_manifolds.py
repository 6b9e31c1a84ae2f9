"""NMCE on the synthetic union of two manifolds of appendix D.1 (Table D.1): identifiable (random biases set the
manifolds apart) and not identifiable (no biases: both pass through the origin).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_manifolds.py --out results/nmce-manifolds

Two stages as in the thesis (TCR, then NMCE; `--steps A,B`, no fine-tuning stage), z_dim 12, lambda 100, Gaussian
augmentation 0.1 (Table D.4, on the data scaled to unit variance per coordinate). Prints a Markdown table with
the accuracy (%) and the three z-sim columns of Table D.1, and writes `results.json`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/nmce-manifolds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--ambient", type=int, default=32, help="dimension the random networks map into")
    parser.add_argument("--width", type=int, default=128, help="hidden width of the random networks")
    parser.add_argument("--steps", default="300,300")
    parser.add_argument("--lam", type=float, default=100.0)
    parser.add_argument("--aug-noise", type=float, default=0.1)
    parser.add_argument("--tau", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--eps-sq", type=float, default=0.01, help="eps^2 of both stages (Table D.4)")
    parser.add_argument("--n-init", type=int, default=1, help="NMCE-stage restarts, best by the rate reduction")
    parser.add_argument("--assign", choices=("head", "subspace", "spectral"), default="head",
                        help="labels scored: the cluster head's argmax (the thesis'), refined by nearest subspace, "
                             "or spectral clustering of the features")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from entropy_mcmc.clustering import run_clustering, union_of_manifolds

    s1, s2 = (int(s) for s in args.steps.split(","))
    rows = {}
    for name, bias in (("Identifiable", True), ("Not-identifiable", False)):
        data = union_of_manifolds(args.n, ambient=args.ambient, width=args.width, bias=bias, seed=args.seed)
        rows[name] = run_clustering(data, seed=args.seed, out_dir=Path(args.out) / data.name, steps=(s1, s2, 0),
                                    lam=args.lam, z_dim=12, aug_noise=args.aug_noise, tau=args.tau,
                                    batch_size=args.batch_size, eps_sq=args.eps_sq, cluster_eps_sq=args.eps_sq,
                                    n_init=args.n_init, assign=args.assign, progress=False,
                                    standardize=False)  # appendix D.1's set: one global scale, as generated
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=2))
    print("| data set | accuracy % | z-sim true clusters | z-sim found clusters | z-sim within cluster | seconds |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, m in rows.items():
        print(f"| {name} | {100 * m['acc']:.1f} | {m['zsim_true']:.3f} | {m.get('zsim_found', float('nan')):.3f} | "
              f"{m.get('zsim_within', float('nan')):.3f} | {m['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

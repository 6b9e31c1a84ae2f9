"""NMCE on scikit-learn's 8x8 digits side by side with k-means and spectral clustering (same inputs, same run).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_digits.py --out results/nmce-digits
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_digits.py --data /tmp/mnist3k/png --out results/nmce-mnist3k

`--data` takes any data set `entropy-mcmc cluster` reads (a .mat file, a folder of class folders of PNG
images; see `export_mnist_subset.py`); the peers cluster the same loaded pixels.

Prints and writes `results.json`: ACC (Hungarian matching, scipy), NMI and ARI (scikit-learn) and seconds
for each method. The NMCE run also leaves its log, checkpoint and figures under `--out/nmce`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits, a .mat file or a folder of PNG class folders")
    parser.add_argument("--out", default="results/nmce-digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", default="300,300,500")
    parser.add_argument("--lam", type=float, default=50.0)
    parser.add_argument("--tau", type=float, default=0.5, help="Gumbel-softmax temperature")
    parser.add_argument("--eps-sq", type=float, default=0.01, help="squared coding error of eq. 5.2 (TCR stage)")
    parser.add_argument("--cluster-eps-sq", type=float, default=0.1, help="eps^2 of the two NMCE stages")
    parser.add_argument("--n-init", type=int, default=4, help="stage-2 restarts, best by the rate reduction")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--backbone", choices=("mlp", "resnet"), default="mlp")
    parser.add_argument("--optimizer", choices=("adam", "lars"), default="adam")
    parser.add_argument("--assign", choices=("spectral", "subspace", "head", "ensc"), default="spectral",
                        help="labels NMCE reports (every run also scores head, subspace and spectral)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-restarts", action="store_true",
                        help="also print each stage-2 restart's Delta R variants and ACC/NMI/ARI (reporting only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from sklearn.cluster import KMeans, SpectralClustering

    from entropy_mcmc.clustering import clustering_scores, run_clustering
    from entropy_mcmc.clustering.data import load_cluster_data
    from entropy_mcmc.clustering.assign import spectral_assign, subspace_assign
    from entropy_mcmc.clustering.coding_rate import coding_rate_reduction
    from entropy_mcmc.clustering.training import NMCETrainer, embed

    data = load_cluster_data(args.data, seed=args.seed)
    k = data.num_classes
    flat = data.x.flatten(1).numpy()
    rows = {}
    peers = {"k-means": lambda: KMeans(k, n_init=10, random_state=args.seed).fit_predict(flat),
             "spectral (rbf, defaults)": lambda: SpectralClustering(k, random_state=args.seed).fit_predict(flat),
             "spectral (10-NN graph)": lambda: SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                                                  random_state=args.seed).fit_predict(flat),
             # NMCE's default labelling applied to the pixels: the difference to NMCE's row is the features alone
             "spectral (NMCE's labelling rule on pixels)": lambda: spectral_assign(torch.as_tensor(flat), k,
                                                                                   seed=args.seed)}
    for name, fit in peers.items():
        t0 = time.perf_counter()
        labels = fit()
        rows[name] = {**clustering_scores(data.y, labels), "seconds": time.perf_counter() - t0}
    if args.report_restarts:
        score = NMCETrainer.restart_score

        def report(trainer, x, stage):
            """The kept criterion's value, plus Delta R at other eps^2 and on the subspace-refined labels."""
            value = score(trainer, x, stage)
            z, logits = embed(trainer.net, x)
            head = logits.argmax(1)
            sub = subspace_assign(z, head, k)
            r, rs = clustering_scores(data.y, head), clustering_scores(data.y, sub)
            others = " ".join(f"{e:g}:{float(coding_rate_reduction(z, head, e)):.3f}" for e in (0.01, 0.05, 0.2, 0.5))
            print(f"stage-2 restart {trainer.restart}: Delta R {value:.3f} (eps^2 {others}; on subspace labels "
                  f"{float(coding_rate_reduction(z, sub, trainer._eps_sq(stage))):.3f}), head ACC {r['acc']:.3f} "
                  f"NMI {r['nmi']:.3f} ARI {r['ari']:.3f}, subspace ACC {rs['acc']:.3f} NMI {rs['nmi']:.3f} "
                  f"ARI {rs['ari']:.3f}", flush=True)
            return value

        NMCETrainer.restart_score = report
    steps = tuple(int(s) for s in args.steps.split(","))
    m = run_clustering(data, seed=args.seed, out_dir=Path(args.out) / "nmce", steps=steps, lam=args.lam,
                       tau=args.tau, eps_sq=args.eps_sq, cluster_eps_sq=args.cluster_eps_sq, n_init=args.n_init,
                       width=args.width, batch_size=args.batch_size,
                       backbone=args.backbone, optimizer=args.optimizer, assign=args.assign, progress=False)
    name = (f"NMCE ({args.backbone}, {args.optimizer}, steps {args.steps}, lam {args.lam:g}, tau {args.tau:g}, "
            f"eps^2 {args.eps_sq:g}/{args.cluster_eps_sq:g}, n_init {args.n_init})")
    for how, scores in m["by_assignment"].items():
        rows[f"{name}, labels: {how}"] = {**scores, "seconds": m["seconds"]}
    print("stage-2 restarts (rate reduction):", [round(r["rate_reduction"], 3) for r in m["restart_scores"]])
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=2))
    print("| method | ACC | NMI | ARI | seconds |\n| --- | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(f"| {name} | {r['acc']:.3f} | {r['nmi']:.3f} | {r['ari']:.3f} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

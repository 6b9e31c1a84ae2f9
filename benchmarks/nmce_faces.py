"""NMCE at the `cluster` command's defaults on face sets brought as `.mat` files, side by side with k-means,
spectral clustering and EnSC on the same loaded pixels, in one run.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/nmce_faces.py \\
        --data ../shared/data/faces/YaleB.mat ../shared/data/faces/orl.mat --out results/nmce-faces

Each file is read as `entropy-mcmc cluster --data FILE` reads it (either orientation, uint8 or float pixels).
Peers: k-means (scikit-learn, 10 starts), spectral clustering (scikit-learn, its default RBF affinity and a
10-NN graph), EnSC on the pixels (`clustering.ensc.ensc_assign`, the package's settings), and, as a diagnostic,
NMCE's own labelling rule (`spectral_assign`) on the pixels. NMCE is `run_clustering` with every default except
`--steps` when given. Prints a Markdown table and writes `results.json`: ACC (Hungarian, scipy), NMI and ARI
(scikit-learn), seconds.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help=".mat files (fea/gnd) or PNG class folders")
    parser.add_argument("--out", default="results/nmce-faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", default=None, help="S1,S2,S3 of NMCE (default: the cluster command's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated methods to leave out (e.g. ensc)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from sklearn.cluster import KMeans, SpectralClustering

    from entropy_mcmc.clustering import clustering_scores, run_clustering
    from entropy_mcmc.clustering.assign import spectral_assign
    from entropy_mcmc.clustering.data import load_cluster_data
    from entropy_mcmc.clustering.ensc import ensc_assign

    skip = set(filter(None, args.skip.split(",")))
    steps = {} if args.steps is None else {"steps": tuple(int(s) for s in args.steps.split(","))}
    results = {}
    for spec in args.data:
        data = load_cluster_data(spec, seed=args.seed)
        k, seed = data.num_classes, args.seed
        flat = data.x.flatten(1).numpy()
        pixels = torch.as_tensor(flat)
        methods = {
            "k-means": lambda: KMeans(k, n_init=10, random_state=seed).fit_predict(flat),
            "spectral (rbf, defaults)": lambda: SpectralClustering(k, random_state=seed).fit_predict(flat),
            "spectral (10-NN graph)": lambda: SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                                                 random_state=seed).fit_predict(flat),
            "ensc": lambda: ensc_assign(pixels, k, seed=seed),
            "spectral (NMCE's labelling rule on pixels)": lambda: spectral_assign(pixels, k, seed=seed)}
        rows = {}
        for name, fit in methods.items():
            if name.split(" ")[0] in skip:
                continue
            t0 = time.perf_counter()
            labels = fit()
            rows[name] = {**clustering_scores(data.y, labels), "seconds": time.perf_counter() - t0}
            print(data.name, name, {key: round(v, 3) for key, v in rows[name].items()}, flush=True)
        if "nmce" not in skip:
            m = run_clustering(data, seed=seed, out_dir=Path(args.out) / data.name, progress=False, **steps)
            for how, scores in m["by_assignment"].items():
                label = "NMCE (default labels: spectral)" if how == m["assign"] else f"NMCE, labels: {how}"
                rows[label] = {**scores, "seconds": m["seconds"]}
            print(data.name, "NMCE", {key: round(v, 3) for key, v in rows["NMCE (default labels: spectral)"].items()},
                  flush=True)
        results[data.name] = {"n": int(data.x.shape[0]), "clusters": k, "image": list(data.x.shape[1:]),
                              "rows": rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))
    for name, res in results.items():
        print(f"\n{name}: {res['n']} images {res['image']}, {res['clusters']} classes\n")
        print("| method | ACC | NMI | ARI | seconds |\n| --- | ---: | ---: | ---: | ---: |")
        for method, r in res["rows"].items():
            print(f"| {method} | {r['acc']:.3f} | {r['nmi']:.3f} | {r['ari']:.3f} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`entropy-mcmc cluster`: train NMCE (thesis ch. 5) on a data set and report ACC, NMI and ARI.

    entropy-mcmc cluster --data digits --clusters 10 --seed 0 --out digits-nmce/
    entropy-mcmc cluster --data path/to/set.mat --out coil20/       # fea/gnd matrices
    entropy-mcmc cluster --data path/to/folder/ --out mine/          # one folder of PNG images per class
    entropy-mcmc cluster --data double-spiral --out spiral/

Writes `metrics.json` (acc, nmi, ari, seconds, ...), `log.csv`, `checkpoint.pt` and PNG figures into `--out`.
Bad inputs (a missing or malformed .mat file, labels that do not match the images, more clusters than the
batch) raise ValueError, which the command-line entry point prints as one line.
"""
from __future__ import annotations

import argparse
import json
import os

from . import common

HELP = "train NMCE on a data set (digits, double-spiral, a .mat file or PNG folders) and report ACC, NMI, ARI"


_steps = common.checked(lambda text: tuple(int(p) for p in text.split(",")),
                        lambda steps: len(steps) == 3 and min(steps) >= 0,
                        "expected three non-negative integers S1,S2,S3")
_image_size = common.checked(lambda text: tuple(int(p) for p in text.lower().split("x")),
                             lambda size: len(size) == 2 and min(size) >= 1, "expected HxW in pixels, e.g. 32x32")
_clusters = common.checked(int, lambda v: v >= 2, "expected an integer of at least 2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="digits, double-spiral, manifolds, manifolds-intersecting, a .mat file (fea/gnd) "
                             "or a folder with one sub-folder of PNG images per class")
    parser.add_argument("--clusters", type=_clusters, default=None,
                        help="number of clusters (default: number of classes)")
    parser.add_argument("--seed", type=common.seed, default=0)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--steps", type=_steps, default=(300, 300, 500),
                        help="steps of the three stages (TCR, NMCE on the frozen backbone, NMCE fine-tuning)")
    parser.add_argument("--batch-size", type=common.positive_int, default=1024)
    parser.add_argument("--lam", type=common.nonneg_float, default=50.0,
                        help="weight of the view-similarity constraint")
    parser.add_argument("--optimizer", choices=("adam", "lars"), default="adam",
                        help="optimizer of backbone and feature head (LARS: the thesis' large image sets)")
    parser.add_argument("--lr", type=common.positive_float, default=None,
                        help="learning rate (default: 1e-3 for Adam, batch/256 "
                                                                "for LARS)")
    parser.add_argument("--tau", type=common.positive_float, default=0.5,
                        help="Gumbel-softmax temperature of the memberships")
    parser.add_argument("--eps-sq", type=common.positive_float, default=0.01,
                        help="squared coding error eps^2 of eq. 5.2 (TCR stage)")
    parser.add_argument("--cluster-eps-sq", type=common.positive_float, default=0.1,
                        help="eps^2 of the two NMCE stages")
    parser.add_argument("--n-init", type=common.positive_int, default=4,
                        help="stage-2 runs with new heads; the one with the largest rate reduction is kept (no labels)")
    parser.add_argument("--z-dim", type=common.positive_int, default=None,
                        help="feature dimension (default 4 x clusters, 6-128)")
    parser.add_argument("--backbone", choices=("mlp", "resnet"), default="mlp")
    parser.add_argument("--assign", choices=("spectral", "subspace", "head", "ensc"), default="spectral",
                        help="final labels: spectral clustering of the features' nearest-neighbour graph, the "
                             "cluster head refined by nearest subspace, the head alone, or elastic net subspace "
                             "clustering of the features (the thesis' COIL recipe, with --steps N,0,0)")
    parser.add_argument("--width", type=common.positive_int, default=256)
    parser.add_argument("--aug-noise", type=common.nonneg_float, default=0.05,
                        help="Gaussian augmentation for point data, in standardized units")
    parser.add_argument("--no-standardize", dest="standardize", action="store_false",
                        help="point data (not images) are standardized per feature by default (zero mean, unit "
                             "variance; figures stay in the data's units); with this flag, centred and divided by "
                             "one global scale, keeping the features' relative scales. Images keep pixels in [0, 1]")
    parser.add_argument("--max-side", type=common.positive_int, default=32,
                        help="downscale larger images to this side (CPU)")
    parser.add_argument("--image-size", type=_image_size, default=None,
                        help="HxW of the images in a .mat file when the pixel count does not tell (square images "
                             "and common face-set sizes are read from it)")
    parser.add_argument("--images-in", choices=("rows", "columns"), default=None,
                        help="which axis of a .mat file's feature matrix holds the images (default: the one as long "
                             "as the label vector; pixels are read column-major, uint8 or floats)")
    parser.add_argument("--threads", type=common.nonneg_int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import torch

    from ..clustering.data import load_cluster_data
    from ..clustering.distributed import world
    from ..clustering.experiment import run_clustering

    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank probes the output folder
        common.check_writable_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_cluster_data(args.data, seed=args.seed, image_shape=args.image_size, images_in=args.images_in)
    metrics = run_clustering(data, n_clusters=args.clusters, seed=args.seed, out_dir=args.out, steps=args.steps,
                             batch_size=args.batch_size, lam=args.lam, lr=args.lr, optimizer=args.optimizer,
                             eps_sq=args.eps_sq, cluster_eps_sq=args.cluster_eps_sq, n_init=args.n_init, tau=args.tau,
                             z_dim=args.z_dim, backbone=args.backbone, width=args.width, aug_noise=args.aug_noise,
                             max_side=args.max_side, assign=args.assign, standardize=args.standardize,
                             progress=not args.no_progress)
    rank, _ = world()
    if not rank:
        print(json.dumps({k: metrics[k] for k in ("acc", "nmi", "ari", "seconds") if k in metrics}))
    return 0

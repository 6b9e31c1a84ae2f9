"""One call from data to results: train NMCE on a data set, report ACC/NMI/ARI, write `metrics.json`,
the CSV log, a checkpoint and the figures. The `cluster` command is a thin wrapper around `run_clustering`.

Defaults aim at a data set a user brings on a CPU (a few thousand images, well under 30 minutes): images
larger than `max_side` pixels are downscaled, and the backbone is an MLP on the (augmented) pixels unless
`backbone='resnet'` asks for the small ResNet of appendix D.2.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..samplers.distributed import process_group
from .assign import spectral_assign, subspace_assign
from .augment import GaussianNoise, ImageAugment
from .data import ClusterData, feature_scaling, load_cluster_data
from .ensc import ensc_assign
from .figures import plot_cluster_images, plot_points, plot_singular_values
from .metrics import clustering_scores, subspace_report
from .networks import ClusterNetwork, MLPBackbone, SmallResNet
from .training import NMCETrainer, NMCETrainConfig, default_lr, embed, three_stages


ASSIGNMENTS = ("spectral", "subspace", "head", "ensc")


def prepare(data: ClusterData, max_side: int = 32, standardize: bool = True) -> torch.Tensor:
    """Images downscaled so that no side exceeds `max_side` (pixels stay in [0, 1]); vectors standardized per
    feature, or with `standardize=False` centred and divided by one global scale (`data.feature_scaling`)."""
    x = data.x
    if data.is_image:
        h, w = x.shape[-2:]
        if max(h, w) > max_side:
            f = max_side / max(h, w)
            x = F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
        return x
    mean, scale = feature_scaling(x, standardize)
    return (x - mean) / scale


def build(data: ClusterData, x: torch.Tensor, n_clusters: int, z_dim: Optional[int], backbone: str, width: int,
          aug_noise: float):
    """The network and augmentation that suit the data.

    Both heads sit on a pre-feature layer (linear, batch norm, ReLU; thesis ch. 5.4), also on the MLP: without
    the batch norm the MLP's outputs barely vary between points (per-unit spread ~0.02 on pixels in [0, 1]), so
    the cluster head's logits cannot tell points apart, its memberships stay uniform in stage 2, the cluster rate
    equals the total rate and the features collapse. Images under 16 pixels a side get milder crops and
    perspective (a 0.7-area crop of an 8x8 digit cuts whole strokes).
    """
    z_dim = z_dim or max(6, min(128, 4 * n_clusters))
    if data.is_image:
        small = max(x.shape[-2:]) < 16
        augment = ImageAugment(tuple(x.shape[-2:]), crop_scale=(0.85, 1.0) if small else (0.7, 1.0),
                               perspective=0.15 if small else 0.3)
        if backbone == "resnet":
            net = ClusterNetwork(SmallResNet(x.shape[1], width=max(8, width // 16)), z_dim, n_clusters,
                                 pre_feature=width)
        else:
            net = ClusterNetwork(MLPBackbone(x[0].numel(), width, 4), z_dim, n_clusters, pre_feature=2 * width)
    else:
        augment = GaussianNoise(aug_noise)
        net = ClusterNetwork(MLPBackbone(x.shape[1], width, 4), z_dim, n_clusters, pre_feature=2 * width)
    return net, augment


def run_clustering(data, n_clusters: Optional[int] = None, seed: int = 0, out_dir=None,
                   steps: Sequence[int] = (300, 300, 500), batch_size: int = 1024, lam: float = 50.0,
                   lr: Optional[float] = None, optimizer: str = "adam", eps_sq: float = 0.01,
                   cluster_eps_sq: Optional[float] = 0.1, n_init: int = 4,
                   tau: float = 0.5, z_dim: Optional[int] = None,
                   backbone: str = "mlp", width: int = 256, aug_noise: float = 0.05, max_side: int = 32,
                   assign: str = "spectral", standardize: bool = True, progress: bool = True,
                   figures: bool = True) -> dict:
    """Train NMCE on `data` (a `ClusterData` or a spec for `load_cluster_data`) and return the metrics.

    `n_clusters` defaults to the number of classes in the labels. `optimizer` is 'adam' or 'lars'; `lr` defaults
    to 1e-3 for Adam and to batch / 256 for LARS (the thesis' base rate 1 at batch 256). `eps_sq` is eps^2 of the
    TCR stage, `cluster_eps_sq` that of the two NMCE stages (None: the same). Stage 2 runs `n_init` times with
    new heads and keeps the run with the largest rate reduction on all points (no labels). Writes into `out_dir`
    (when given): `metrics.json`, `log.csv`, `checkpoint.pt`, `labels.pt` and PNG figures. The labels
    (`assign`) come from the trained features z: spectral clustering of their nearest-neighbour graph
    (`'spectral'`, `assign.spectral_assign`), the cluster head's argmax refined by nearest subspace (`'subspace'`,
    `assign.subspace_assign`, rank z_dim // k), the head's argmax alone (`'head'`) or elastic net subspace
    clustering (`'ensc'`, `ensc.ensc_assign`: the thesis' clustering of TCR features on COIL, e.g. with steps
    (2000, 0, 0)). With labels in the data, `by_assignment` in the metrics scores the first three and `assign`;
    without, only `assign` is computed. Under `torchrun` the network trains with DistributedDataParallel on
    `batch_size` points split over the processes; rank 0 writes. Feature vectors (not images) are standardized
    per feature (`standardize`; False: one global scale, `prepare`), and `aug_noise` is in those units; the
    figures show the points in the data's own units.
    """
    if backbone not in ("mlp", "resnet"):
        raise ValueError(f"backbone must be 'mlp' or 'resnet', got {backbone!r}")
    if assign not in ASSIGNMENTS:
        raise ValueError(f"assign must be one of {ASSIGNMENTS}, got {assign!r}")
    t0 = time.perf_counter()
    rank, world_size = process_group()       # under torchrun: DDP over the ranks, rank 0 writes the results
    data = data if isinstance(data, ClusterData) else load_cluster_data(str(data), seed=seed)
    k = int(n_clusters or data.num_classes)
    if k < 2:
        raise ValueError("give the number of clusters (the data set has no labels to read it from)")
    n = data.x.shape[0]
    batch = min(batch_size, n)
    if k > batch:
        raise ValueError(f"{k} clusters is more than the batch of {batch} points; use fewer clusters or a larger batch")
    x = prepare(data, max_side, standardize)
    torch.manual_seed(seed)
    net, augment = build(data, x, k, z_dim, backbone, width, aug_noise)
    lr = default_lr(optimizer, batch) if lr is None else lr
    stages = three_stages(tuple(steps), lr=lr, lam=lam, restarts=n_init, cluster_eps_sq=cluster_eps_sq,
                          optimizer=optimizer)
    config = NMCETrainConfig(stages=stages, eps_sq=eps_sq, tau=tau, batch_size=batch, seed=seed)
    out = Path(out_dir) if out_dir is not None else None
    trainer = NMCETrainer(net, augment, config, out_dir=out, progress=progress)
    trainer.fit(x)
    z, logits = embed(net, x)
    head = logits.argmax(1)
    labellers = {"head": lambda: head, "subspace": lambda: subspace_assign(z, head, k),
                 "spectral": lambda: spectral_assign(z, k, seed=seed), "ensc": lambda: ensc_assign(z, k, seed=seed)}
    # the others only to score them against labels; EnSC (minutes on thousands of points) only when asked
    wanted = [assign] if data.y is None else [a for a in labellers if a != "ensc" or assign == "ensc"]
    found = {name: labellers[name]() for name in wanted}
    labels = found[assign]
    metrics = {"data": data.name, "n": n, "clusters": k, "seed": seed, "backbone": backbone, "world_size": world_size,
               "assign": assign, "standardize": standardize and not data.is_image, "train_seconds": trainer.seconds,
               "restart_scores": trainer.restart_scores}
    if data.y is not None:
        metrics.update(clustering_scores(data.y, labels))
        metrics["by_assignment"] = {name: clustering_scores(data.y, lab) for name, lab in found.items()}
        if k == 2:
            metrics.update(subspace_report(z, data.y, labels))
    metrics["found_clusters"] = int(torch.unique(labels).numel())
    metrics["seconds"] = time.perf_counter() - t0
    if out is not None and rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"labels": labels, "z": z}, out / "labels.pt")
        if figures:
            plot_singular_values(z, labels, out / "singular_values.png")
            if data.is_image:
                plot_cluster_images(x, labels, out / "clusters.png")
            elif data.x.shape[1] == 2:
                plot_points(data.x, labels, out / "clusters.png", f"NMCE, ACC {metrics.get('acc', float('nan')):.3f}")
        metrics["seconds"] = time.perf_counter() - t0
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


__all__ = ["run_clustering", "prepare", "build", "ASSIGNMENTS"]

"""Figures of an NMCE run, saved as PNG: singular values of each cluster's features (Figure 5.2 / D.3b
analogue), a grid of images per cluster, and the clustering of 2-D points (Figure 5.1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _figure(**kwargs):
    """A figure outside pyplot: writing one leaves the caller's backend and figures (a notebook's) alone."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def cluster_singular_values(z: torch.Tensor, labels) -> dict:
    """Normalized singular values (largest = 1) of the features of each found cluster."""
    labels = torch.as_tensor(np.asarray(labels))
    out = {}
    for c in torch.unique(labels).tolist():
        s = torch.linalg.svdvals(z[labels == c].double())
        out[int(c)] = (s / s.max()).numpy() if s.numel() and s.max() > 0 else s.numpy()
    return out


def plot_singular_values(z: torch.Tensor, labels, path) -> Path:
    fig = _figure(figsize=(9, 3.2))
    ax = fig.subplots(1, 2)
    s_all = torch.linalg.svdvals(z.double())
    ax[0].plot((s_all / s_all.max()).numpy(), marker=".")
    ax[0].set_title("all features")
    for c, s in cluster_singular_values(z, labels).items():
        ax[1].plot(s, marker=".", label=f"cluster {c} ({int((np.asarray(labels) == c).sum())})")
    ax[1].set_title("each cluster")
    for a in ax:
        a.set_xlabel("component")
        a.set_ylabel("normalized singular value")
    if len(np.unique(labels)) <= 12:
        ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_cluster_images(images: torch.Tensor, labels, path, per_cluster: int = 16) -> Path:
    """One row per found cluster: its first `per_cluster` images."""
    labels = np.asarray(labels)
    clusters = np.unique(labels)
    fig = _figure(figsize=(per_cluster * 0.6, len(clusters) * 0.65))
    axes = fig.subplots(len(clusters), per_cluster, squeeze=False)
    for r, c in enumerate(clusters):
        idx = np.flatnonzero(labels == c)[:per_cluster]
        for j in range(per_cluster):
            ax = axes[r, j]
            ax.set_axis_off()
            if j < len(idx):
                img = images[idx[j]].detach().cpu()
                img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
                ax.imshow(img.numpy(), cmap="gray" if img.dim() == 2 else None, vmin=0, vmax=1)
        axes[r, 0].set_title(f"{c}: {int((labels == c).sum())}", fontsize=6, loc="left")
    fig.tight_layout(pad=0.1)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_points(x: torch.Tensor, labels, path, title: str = "") -> Path:
    """Scatter plot of 2-D points coloured by cluster (Figure 5.1)."""
    fig = _figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=np.asarray(labels), s=2, cmap="coolwarm")
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


__all__ = ["cluster_singular_values", "plot_singular_values", "plot_cluster_images", "plot_points"]

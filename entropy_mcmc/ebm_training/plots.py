"""Figures for energy models: a scatter of 2-D samples over the data, an image grid, the energy trace
against the temperature (Figure B.7B analogue). Built with `Figure()` (no pyplot state); saved when
`path` is given."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def scatter_2d(samples, data=None, path: Optional[str] = None, title: str = ""):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8 if data is not None else 4, 4))
    panels = [("data", data), ("samples", samples)] if data is not None else [("samples", samples)]
    lim = np.abs(np.concatenate([_np(p) for _, p in panels])).max() * 1.05
    for i, (name, pts) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        p = _np(pts)
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=f"{title} {name}".strip(), aspect="equal")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig


def image_grid(images, path: Optional[str] = None, ncol: int = 16, title: str = "",
               row_labels: Optional[Sequence[str]] = None):
    """Images `[n, C, H, W]` (C = 1 or 3) clipped to [0, 1] in a grid of `ncol` columns."""
    from matplotlib.figure import Figure

    x = np.clip(_np(images), 0.0, 1.0)
    n, c, h, w = x.shape
    nrow = -(-n // ncol)
    grid = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1, c))
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = x[i].transpose(1, 2, 0)
    fig = Figure(figsize=(ncol * 0.5 + 0.6, nrow * 0.5 + 0.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks([1 + r * (h + 1) + h / 2 for r in range(len(row_labels))], list(row_labels))
    else:
        ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig


def energy_trace(temperature, mean_energy, path: Optional[str] = None, title: str = ""):
    """Temperature and mean sample energy against the step (Figure B.7B analogue)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, len(_np(temperature)) + 1)
    ax.plot(steps, _np(temperature), color="C1", label="temperature T")
    ax.set(xlabel="recorded step", ylabel="T", yscale="symlog", title=title)
    ax2 = ax.twinx()
    ax2.plot(steps, _np(mean_energy), color="C0", label="mean energy")
    ax2.set_ylabel("mean energy")
    fig.legend(loc="upper right")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig


__all__ = ["scatter_2d", "image_grid", "energy_trace"]

"""Nearest-subspace assignment: each point goes to the cluster whose principal subspace holds most of its feature.

NMCE trains the features of each cluster to span a low-dimensional linear subspace, orthogonal to the others
(the rate-reduction term of eq. 5.4, as in MCR^2). Given features z `[n, d]` on the unit sphere and a first
partition (the cluster head's argmax), cluster c's subspace is spanned by the top `rank` right singular
vectors U_c of its features, and each point is reassigned to argmax_c ||U_c z||^2; `iters` rounds.
"""
from __future__ import annotations

from typing import Optional

import torch


def subspace_assign(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, rank: Optional[int] = None,
                    iters: int = 2) -> torch.Tensor:
    """Labels `[n]` after `iters` rounds of nearest-subspace reassignment (rank default: d // n_clusters).

    A cluster with fewer than `rank` points has no subspace and receives no point.
    """
    if z.dim() != 2 or labels.shape != z.shape[:1]:
        raise ValueError(f"expected features [n, d] and labels [n], got {tuple(z.shape)} and {tuple(labels.shape)}")
    rank = max(1, z.shape[1] // n_clusters) if rank is None else int(rank)
    if not 1 <= rank <= z.shape[1] or iters < 1:
        raise ValueError(f"rank must lie in [1, {z.shape[1]}] and iters be positive, got {rank} and {iters}")
    z = z.detach()
    labels = labels.clone()
    for _ in range(iters):
        energy = torch.full((z.shape[0], n_clusters), -1.0, dtype=z.dtype, device=z.device)
        for c in range(n_clusters):
            zc = z[labels == c]
            if zc.shape[0] >= rank:
                basis = torch.linalg.svd(zc, full_matrices=False)[2][:rank]
                energy[:, c] = (z @ basis.T).pow(2).sum(1)
        labels = energy.argmax(1)
    return labels


__all__ = ["subspace_assign"]

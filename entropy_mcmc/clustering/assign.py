"""Labels from the learned features z `[n, d]` (unit vectors) besides the cluster head's argmax.

- `subspace_assign`: nearest subspace. NMCE trains the features of each cluster to span a low-dimensional
  linear subspace, orthogonal to the others (the rate-reduction term of eq. 5.4, as in MCR^2). From a first
  partition (the cluster head's argmax), cluster c's subspace is spanned by the top `rank` right singular
  vectors U_c of its features, and each point is reassigned to argmax_c ||U_c z||^2; `iters` rounds.
- `spectral_assign`: spectral clustering (scikit-learn) of the k-nearest-neighbour graph of the features, a
  locality-based clustering of the embedding (ch. 5.2: neighbours on a manifold share a cluster) that does not
  depend on the head.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch


def fit_subspaces(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, rank: Optional[int] = None,
                  iters: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """The cluster subspaces of the last of `iters` nearest-subspace rounds from `labels`: bases `[k, rank, d]`
    (orthonormal rows) and a mask `[k]` of the clusters that have one (rank default: d // n_clusters).

    A cluster with fewer than `rank` points has no subspace and receives no point.
    """
    if z.dim() != 2 or labels.shape != z.shape[:1]:
        raise ValueError(f"expected features [n, d] and labels [n], got {tuple(z.shape)} and {tuple(labels.shape)}")
    rank = max(1, z.shape[1] // n_clusters) if rank is None else int(rank)
    if not 1 <= rank <= z.shape[1] or iters < 1:
        raise ValueError(f"rank must lie in [1, {z.shape[1]}] and iters be positive, got {rank} and {iters}")
    z = z.detach()
    for i in range(iters):
        if i:
            labels = nearest_subspace(z, bases, valid)
        bases = torch.zeros(n_clusters, rank, z.shape[1], dtype=z.dtype, device=z.device)
        valid = torch.zeros(n_clusters, dtype=torch.bool, device=z.device)
        for c in range(n_clusters):
            zc = z[labels == c]
            if zc.shape[0] >= rank:
                bases[c], valid[c] = torch.linalg.svd(zc, full_matrices=False)[2][:rank], True
    return bases, valid


def nearest_subspace(z: torch.Tensor, bases: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """argmax_c ||U_c z||^2 over the clusters in `valid` (`bases` and `valid` from `fit_subspaces`)."""
    energy = torch.einsum("krd,nd->nkr", bases.to(z.dtype), z.detach()).pow(2).sum(-1)
    return energy.masked_fill(~valid, -1.0).argmax(1)


def subspace_assign(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, rank: Optional[int] = None,
                    iters: int = 2) -> torch.Tensor:
    """Labels `[n]` after `iters` rounds of nearest-subspace reassignment (rank default: d // n_clusters)."""
    return nearest_subspace(z, *fit_subspaces(z, labels, n_clusters, rank, iters))


def spectral_assign(z: torch.Tensor, n_clusters: int, n_neighbors: Optional[int] = None, seed: int = 0) -> torch.Tensor:
    """Labels `[n]` from spectral clustering of the symmetrized `n_neighbors`-NN graph of the features.

    `n_neighbors` defaults to 30, or to half the mean cluster size n / (2 k) when that is smaller, so that a
    neighbourhood stays inside one cluster.
    """
    from sklearn.cluster import SpectralClustering

    if z.dim() != 2:
        raise ValueError(f"expected features [n, d], got {tuple(z.shape)}")
    n = z.shape[0]
    if not 2 <= n_clusters < n:
        raise ValueError(f"n_clusters must lie in [2, {n - 1}] for {n} points, got {n_clusters}")
    n_neighbors = max(2, min(30, n // (2 * n_clusters))) if n_neighbors is None else int(n_neighbors)
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must lie in [1, {n - 1}], got {n_neighbors}")
    model = SpectralClustering(n_clusters, affinity="nearest_neighbors", n_neighbors=n_neighbors, random_state=seed)
    with warnings.catch_warnings():   # a graph in several pieces is still clustered; the warning is not actionable
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels = model.fit_predict(z.detach().cpu().double().numpy())
    return torch.as_tensor(labels, dtype=torch.long, device=z.device)


__all__ = ["subspace_assign", "fit_subspaces", "nearest_subspace", "spectral_assign"]

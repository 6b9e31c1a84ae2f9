"""Coding-rate objectives of NMCE (thesis chapter 5): eq. 5.2 (coding rate), 5.3 (rate reduction),
5.4 (NMCE) and 5.5 (total coding rate, TCR).

`eps_sq` is the squared coding error eps^2 of eq. 5.2. The values of Table D.4 (0.01 for the toy
and synthetic sets) are the ones the thesis' released code puts in that place, so they are the
defaults here. Every log-determinant goes through a Cholesky factor of `I + c G` (always positive
definite) on the smaller of the two Gram matrices, which by Sylvester's identity has the same
determinant (eq. D.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


def logdet_identity_plus(a: torch.Tensor, scale) -> torch.Tensor:
    """`logdet(I_d + scale * a^T a)` for `a` of shape `[..., m, d]`, on the smaller Gram matrix.

    `scale` is a float or a tensor broadcasting against the batch dimensions `...`.
    """
    m, d = a.shape[-2:]
    gram = a.transpose(-1, -2) @ a if d <= m else a @ a.transpose(-1, -2)
    n = gram.shape[-1]
    scale = torch.as_tensor(scale, dtype=a.dtype, device=a.device)
    mat = torch.eye(n, dtype=a.dtype, device=a.device) + scale[..., None, None] * gram
    chol, info = torch.linalg.cholesky_ex(mat)
    if bool((info != 0).any()):  # only for non-finite input: report it instead of returning garbage
        raise ValueError("coding rate: the features contain NaN or infinite values")
    return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)


def coding_rate(z: torch.Tensor, eps_sq: float = 0.01) -> torch.Tensor:
    """R(Z, eps) = 1/2 logdet(I + d / eps^2 cov(Z)) with cov(Z) = Z^T Z / m (eq. 5.2); `z` is `[m, d]`."""
    _check_features(z)
    m, d = z.shape
    return 0.5 * logdet_identity_plus(z, d / (m * eps_sq))


def memberships(labels_or_probs: torch.Tensor, num_clusters: Optional[int] = None, like=None) -> torch.Tensor:
    """A membership matrix `[m, k]`: integer labels become one-hot, a probability matrix is kept."""
    if labels_or_probs.dim() == 1:
        if labels_or_probs.dtype.is_floating_point:
            raise TypeError("cluster labels must be an integer tensor (or give a [m, k] membership matrix)")
        k = int(labels_or_probs.max()) + 1 if num_clusters is None else int(num_clusters)
        out = F.one_hot(labels_or_probs.long(), k)
        return out.to(like.dtype if like is not None else torch.get_default_dtype())
    if labels_or_probs.dim() != 2:
        raise ValueError(f"memberships must be labels [m] or probabilities [m, k], got {tuple(labels_or_probs.shape)}")
    return labels_or_probs


def cluster_coding_rate(z: torch.Tensor, pi: torch.Tensor, eps_sq: float = 0.01) -> torch.Tensor:
    """Membership-weighted rate of the clusters, sum_j tr(Pi_j)/(2m) logdet(I + d/(tr(Pi_j) eps^2) Z^T Pi_j Z).

    The soft form of the sum in eqs. 5.3-5.4 used by MCR^2: `pi` is `[m, k]` (one-hot or Gumbel-softmax
    memberships, rows summing to one) or integer labels `[m]`.
    """
    _check_features(z)
    pi = memberships(pi, like=z).to(z.dtype)
    m, d = z.shape
    if pi.shape[0] != m:
        raise ValueError(f"memberships have {pi.shape[0]} rows for {m} feature vectors")
    tr = pi.sum(0) + 1e-8                                            # [k]
    if d <= m:  # Z^T Pi_j Z directly: no square root of the memberships
        gram = torch.einsum("mk,md,me->kde", pi, z, z)
        eye = torch.eye(d, dtype=z.dtype, device=z.device)
        chol, info = torch.linalg.cholesky_ex(eye + (d / (tr * eps_sq))[:, None, None] * gram)
        if bool((info != 0).any()):
            raise ValueError("coding rate: the features or memberships contain NaN or infinite values")
        logdets = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    else:
        a = pi.clamp_min(1e-30).sqrt().T[:, :, None] * z[None]      # [k, m, d]
        logdets = logdet_identity_plus(a, d / (tr * eps_sq))
    return (tr * logdets).sum() / (2 * m)


def coding_rate_reduction(z: torch.Tensor, pi: torch.Tensor, eps_sq: float = 0.01) -> torch.Tensor:
    """Delta R = R(Z) - sum_j weighted R(Z_j) (eq. 5.3): zero for one cluster, positive for separated subspaces."""
    return coding_rate(z, eps_sq) - cluster_coding_rate(z, pi, eps_sq)


def view_similarity(z_views: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between views 0 and 1 of `[views, m, d]`; the constraint is D = -similarity."""
    if z_views.dim() != 3 or z_views.shape[0] < 2:
        raise ValueError(f"expected features of at least two views [views, m, d], got {tuple(z_views.shape)}")
    return F.cosine_similarity(z_views[0], z_views[1], dim=-1).mean()


def average_views(z_views: torch.Tensor) -> torch.Tensor:
    """Features averaged over the views and put back on the unit sphere (as the thesis does before the loss)."""
    return F.normalize(z_views.mean(0), dim=-1)


@dataclass
class LossParts:
    """The value to minimize and its terms (plain floats for logging, the loss keeps its graph)."""

    loss: torch.Tensor
    rate: float
    cluster_rate: float
    similarity: float


def tcr_loss(z_views: torch.Tensor, eps_sq: float = 0.01, lam: float = 20.0) -> LossParts:
    """L_TCR = -R(Z_avg) + lam * D with D = -cos(z, z') between two views (eq. 5.5); `z_views` `[views, m, d]`."""
    sim = view_similarity(z_views)
    rate = coding_rate(average_views(z_views), eps_sq)
    return LossParts(-rate - lam * sim, float(rate.detach()), float("nan"), float(sim.detach()))


def nmce_loss(z_views: torch.Tensor, prob_views: torch.Tensor, eps_sq: float = 0.01, lam: float = 20.0,
              gamma: float = 1.0) -> LossParts:
    """L_NMCE = gamma * sum_j R(Z_j) - R(Z) + lam * D (eq. 5.4), on view-averaged features and memberships.

    `prob_views` `[views, m, k]` are the memberships of each view (Gumbel-softmax draws from the cluster
    head); `gamma` is the weight of the cluster term, ramped up by the training schedule (1 is eq. 5.4).
    """
    if prob_views.dim() != 3 or prob_views.shape[:2] != z_views.shape[:2]:
        raise ValueError(f"memberships {tuple(prob_views.shape)} do not match features {tuple(z_views.shape)}")
    sim = view_similarity(z_views)
    z = average_views(z_views)
    rate = coding_rate(z, eps_sq)
    crate = cluster_coding_rate(z, prob_views.mean(0), eps_sq)
    return LossParts(gamma * crate - rate - lam * sim, float(rate.detach()), float(crate.detach()), float(sim.detach()))


def _check_features(z: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or not z.dtype.is_floating_point:
        raise TypeError("features must be a floating-point tensor")
    if z.dim() != 2 or z.shape[0] < 1:
        raise ValueError(f"features must be a non-empty [m, d] matrix, got shape {tuple(z.shape)}")


__all__ = ["coding_rate", "cluster_coding_rate", "coding_rate_reduction", "logdet_identity_plus", "memberships",
           "view_similarity", "average_views", "tcr_loss", "nmce_loss", "LossParts"]

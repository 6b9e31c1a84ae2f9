"""Clustering metrics (thesis Table 5.3): accuracy under the best one-to-one matching of clusters to
classes (Hungarian algorithm, scipy), NMI and ARI (scikit-learn); and the z-similarities of Table D.1."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def clustering_accuracy(y_true, y_pred) -> float:
    """Fraction of points whose cluster maps to their class under the best one-to-one map (clusters left
    without a class, when there are more clusters than classes, count as errors)."""
    from scipy.optimize import linear_sum_assignment

    t, p = _np(y_true).reshape(-1), _np(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"{t.shape[0]} labels for {p.shape[0]} predictions")
    _, t = np.unique(t, return_inverse=True)
    _, p = np.unique(p, return_inverse=True)
    counts = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / t.shape[0])


def clustering_scores(y_true, y_pred) -> Dict[str, float]:
    """ACC (Hungarian), NMI and ARI."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t, p = _np(y_true).reshape(-1), _np(y_pred).reshape(-1)
    return {"acc": clustering_accuracy(t, p), "nmi": float(normalized_mutual_info_score(t, p)),
            "ari": float(adjusted_rand_score(t, p))}


def z_similarity(z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |cos| between features of the points selected by masks `a` and `b` (distinct pairs when a is b)."""
    za, zb = torch.nn.functional.normalize(z[a], dim=1), torch.nn.functional.normalize(z[b], dim=1)
    sims = (za @ zb.T).abs()
    if torch.equal(a, b):
        n = sims.shape[0]
        return float((sims.sum() - sims.diagonal().sum()) / max(n * (n - 1), 1))
    return float(sims.mean())


def subspace_report(z: torch.Tensor, y_true, y_pred) -> Dict[str, float]:
    """Table D.1's z-sim columns for two clusters: across true clusters, across found clusters, within found."""
    t, p = torch.as_tensor(_np(y_true)), torch.as_tensor(_np(y_pred))
    found = torch.unique(p)
    out = {"zsim_true": z_similarity(z, t == 0, t == 1)}
    if len(found) >= 2:
        out["zsim_found"] = z_similarity(z, p == found[0], p == found[1])
        out["zsim_within"] = float(np.mean([z_similarity(z, p == c, p == c) for c in found[:2]]))
    return out


__all__ = ["clustering_accuracy", "clustering_scores", "z_similarity", "subspace_report"]

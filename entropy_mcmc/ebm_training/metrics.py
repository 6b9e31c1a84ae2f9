"""Sample-quality measures for energy models: MMD with an RBF kernel at the median bandwidth, mode coverage,
denoising PSNR, the Frechet distance in a classifier's feature space, and nearest training neighbours.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch


def _flat(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return x.detach().to(torch.float64).flatten(1).cpu()


def median_bandwidth(x, y) -> float:
    """The median pairwise distance over the pooled points (the median heuristic), at most 2000 of them."""
    z = torch.cat([_flat(x), _flat(y)])
    if z.shape[0] > 2000:
        z = z[torch.linspace(0, z.shape[0] - 1, 2000).long()]
    d = torch.cdist(z, z)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def mmd(x, y, bandwidth: Optional[float] = None, chunk: int = 2048) -> float:
    """The unbiased squared MMD between samples x and y with k(a, b) = exp(-|a - b|^2 / (2 h^2)), h the median
    pairwise distance of the pooled samples unless given; the kernel sums are taken `chunk` rows at a time."""
    x, y = _flat(x), _flat(y)
    h = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError("MMD bandwidth must be positive")

    def ksum(a, b):
        return sum(float(torch.exp(-torch.cdist(a[i:i + chunk], b).pow(2) / (2 * h * h)).sum())
                   for i in range(0, a.shape[0], chunk))

    n, m = x.shape[0], y.shape[0]  # k(a, a) = 1 on the diagonals
    return (ksum(x, x) - n) / (n * (n - 1)) + (ksum(y, y) - m) / (m * (m - 1)) - 2 * ksum(x, y) / (n * m)


def mode_coverage(samples, reference, num_modes: int = 16, min_share: float = 0.2, seed: int = 0) -> Dict[str, float]:
    """Modes are the `num_modes` k-means clusters of `reference` (held-back data); a mode is covered when its
    share of the samples is at least `min_share` times its share of the reference. Returns the number
    covered and the total variation distance between the two mode histograms."""
    from sklearn.cluster import KMeans

    ref, smp = _flat(reference).numpy(), _flat(samples).numpy()
    km = KMeans(num_modes, n_init=4, random_state=seed).fit(ref)
    p = np.bincount(km.labels_, minlength=num_modes) / len(ref)
    q = np.bincount(km.predict(smp), minlength=num_modes) / len(smp)
    return {"covered": int((q >= min_share * p).sum()), "modes": num_modes, "tv": float(0.5 * np.abs(p - q).sum())}


def psnr(clean, estimate, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over a batch of images in [0, peak]."""
    mse = float((_flat(clean) - _flat(estimate)).pow(2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def frechet_distance(feat_a, feat_b) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two feature sets."""
    from scipy import linalg

    a, b = _flat(feat_a).numpy(), _flat(feat_b).numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(ca @ cb, disp=False)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def fit_feature_classifier(train, labels, seed: int = 0):
    """The feature space of the benchmarks' Frechet distance: scikit-learn's `MLPClassifier` with 128 ReLU units
    (Adam, at most 300 epochs) fitted to the flattened training images; nothing downloaded."""
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=seed)
    clf.fit(train.flatten(1).numpy(), labels)  # in the images' own dtype
    return clf


def classifier_features(clf, x) -> np.ndarray:
    """The 128 hidden ReLU units of `fit_feature_classifier`'s network at images `x`."""
    return np.maximum(_flat(x).double().numpy() @ clf.coefs_[0] + clf.intercepts_[0], 0)


def nearest_neighbours(samples, train, k: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
    """(distances `[n, k]`, indices `[n, k]`) of each sample's k nearest training points in L2."""
    d = torch.cdist(_flat(samples), _flat(train))
    return torch.topk(d, k, largest=False)


__all__ = ["mmd", "median_bandwidth", "mode_coverage", "psnr", "frechet_distance", "fit_feature_classifier",
           "classifier_features", "nearest_neighbours"]

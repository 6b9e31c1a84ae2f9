"""Gaussian targets with known moments: ill-conditioned (ICG), strongly correlated (SCG), mixtures (thesis 4.5)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

from .base import CastCache, Target


class Gaussian(Target):
    """N(mean, cov) with a dense covariance; energy 0.5 (x-m)^T P (x-m) with an analytic gradient."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, name: str = "gaussian"):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        d = mean.shape[0]
        if mean.dim() != 1 or cov.shape != (d, d):
            raise ValueError(f"Gaussian: expected mean [d] and cov [d, d], got {list(mean.shape)} and "
                             f"{list(cov.shape)}")
        chol = torch.linalg.cholesky(cov)
        super().__init__((d,), mean=mean, std=cov.diagonal().sqrt())
        self.name = name
        self.cov = cov
        self._c = CastCache(mean=mean, precision=torch.cholesky_inverse(chol), chol=chol)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r = x - self._c.get("mean", x)
        g = r @ self._c.get("precision", x)
        return 0.5 * (r * g).sum(-1), g

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_and_grad(x)[0]

    def sample(self, num, generator=None, dtype=torch.float32, device=None):
        z = torch.randn((num, self.dim), generator=generator, dtype=torch.float64, device=device)
        return (self.mean.to(device) + z @ self._c._base["chol"].to(device).T).to(dtype)


def ill_conditioned_gaussian(dim: int = 50, low: float = 1e-2, high: float = 1e2) -> Gaussian:
    """Diagonal Gaussian with variances log-spaced in [low, high] (ICG-50d of L2HMC and the thesis)."""
    var = torch.logspace(math.log10(low), math.log10(high), dim, dtype=torch.float64)
    return Gaussian(torch.zeros(dim, dtype=torch.float64), torch.diag(var), name=f"icg{dim}")


def strongly_correlated_gaussian(variances: Sequence[float] = (1e2, 1e-1), angle: float = math.pi / 4) -> Gaussian:
    """2d Gaussian with `variances` rotated by `angle` (SCG-2d, appendix C.2 uses [1e2, 1e-1])."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor(variances, dtype=torch.float64)) @ rot.T
    return Gaussian(torch.zeros(2, dtype=torch.float64), cov, name="scg2")


class GaussianMixture(Target):
    """Mixture of isotropic Gaussians sum_k w_k N(mu_k, s_k^2 I)."""

    def __init__(self, means: torch.Tensor, scales, weights: Optional[torch.Tensor] = None, name: str = "mixture"):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() != 2:
            raise ValueError(f"GaussianMixture: expected means [components, d], got {list(means.shape)}")
        k, d = means.shape
        scales = torch.as_tensor(scales, dtype=torch.float64).expand(k).clone()
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None \
            else torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,) or (weights < 0).any() or (scales <= 0).any():
            raise ValueError("GaussianMixture: need k non-negative weights and k positive scales")
        weights = weights / weights.sum()
        mean = (weights[:, None] * means).sum(0)
        second = (weights[:, None] * (scales[:, None] ** 2 + means ** 2)).sum(0)
        super().__init__((d,), mean=mean, std=(second - mean ** 2).sqrt())
        self.name = name
        self.means, self.scales, self.weights = means, scales, weights
        log_norm = weights.log() - d * scales.log() - 0.5 * d * math.log(2 * math.pi)
        self._c = CastCache(means=means, inv_var=scales ** -2, log_norm=log_norm)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        m = self._c.get("means", x)
        sq = (x * x).sum(-1, keepdim=True) - 2 * x @ m.T + (m * m).sum(-1)
        return -torch.logsumexp(self._c.get("log_norm", x) - 0.5 * sq * self._c.get("inv_var", x), -1)

    def sample(self, num, generator=None, dtype=torch.float32, device=None):
        comp = torch.multinomial(self.weights, num, replacement=True, generator=generator)
        z = torch.randn((num, self.dim), generator=generator, dtype=torch.float64)
        return (self.means[comp] + self.scales[comp, None] * z).to(dtype=dtype, device=device)

"""Neal's funnel as in thesis section 4.5: p(x) = N(x_0; 0, sigma^2) N(x_{1:n}; 0, I exp(-2 x_0))."""
from __future__ import annotations

import math
from typing import Tuple

import torch

from .base import Target


class Funnel(Target):
    """Funnel in `dim` dimensions with scale `sigma` (Funnel-1: sigma=1, Funnel-3: sigma=3).

    ``U(x) = x_0^2 / (2 sigma^2) + exp(2 x_0) |x_{1:n}|^2 / 2 - n x_0``. Known moments:
    E x = 0, sd x_0 = sigma, sd x_i = exp(sigma^2).
    """

    def __init__(self, dim: int = 100, sigma: float = 1.0):
        if dim < 2 or sigma <= 0:
            raise ValueError(f"Funnel needs dim >= 2 and sigma > 0, got dim={dim}, sigma={sigma}")
        std = torch.full((dim,), math.exp(sigma ** 2), dtype=torch.float64)
        std[0] = sigma
        super().__init__((dim,), mean=torch.zeros(dim, dtype=torch.float64), std=std)
        self.sigma = float(sigma)
        self.name = f"funnel{sigma:g}-{dim}"

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x0, rest = x[:, 0], x[:, 1:]
        n = rest.shape[1]
        e2 = torch.exp(2 * x0)
        sq = (rest * rest).sum(1)
        u = 0.5 * x0 * x0 / self.sigma ** 2 + 0.5 * e2 * sq - n * x0
        g0 = x0 / self.sigma ** 2 + e2 * sq - n
        return u, torch.cat([g0[:, None], e2[:, None] * rest], 1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_and_grad(x)[0]

    def sample(self, num, generator=None, dtype=torch.float32, device=None):
        z = torch.randn((num, self.dim), generator=generator, dtype=torch.float64)
        x0 = self.sigma * z[:, :1]
        return torch.cat([x0, z[:, 1:] * torch.exp(-x0)], 1).to(dtype=dtype, device=device)

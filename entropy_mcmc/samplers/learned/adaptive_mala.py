"""Gradient-based adaptive MALA with a learned linear preconditioner (Titsias & Dellaportas 2019, "gadMALA").

The linear baseline the thesis compares to (Table 4.1, Figure C.1a): with L lower
triangular (positive diagonal, exp-parameterized) and C = L L^T,

    x' = x - eps^2/2 C dU(x) + eps L z0,   z0 ~ N(0, I)
    log q(x'|x) = log N(z0) - sum_i log L_ii - d log eps,
    z0 = L^{-1} (x' - x + eps^2/2 C dU(x)) / eps.

Trained by the same entropy objective as the learned sampler (E[min(0, log A)] + beta
E[log|det eps L|], beta adapted to a target acceptance), which is the objective of
Titsias & Dellaportas. At L = I it is exactly MALA with step eps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from .proposal import Move, ProposalModel, _eps, log_normal


@dataclass
class AdaptiveMALAConfig:
    """dim: flattened event size; diagonal: learn only diag(L) (the diagonal gadMALA)."""

    dim: int
    event_shape: Sequence[int] = ()
    eps: float = 0.1
    diagonal: bool = False

    def __post_init__(self):
        self.event_shape = tuple(int(s) for s in self.event_shape) or (int(self.dim),)
        if math.prod(self.event_shape) != self.dim:
            raise ValueError(f"event_shape {self.event_shape} does not have {self.dim} elements")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")


class AdaptiveMALAProposal(ProposalModel):
    """Preconditioned Langevin proposal with a trainable Cholesky factor L (starts at the identity)."""

    kind = "adaptive_mala"
    needs_grad_at_x = True

    def __init__(self, config: AdaptiveMALAConfig):
        super().__init__(config)
        d = config.dim
        self.log_diag = nn.Parameter(torch.zeros(d))
        self.lower = None if config.diagonal else nn.Parameter(torch.zeros(d, d))

    def grad_evals(self) -> int:
        return 0  # dU(x) and dU(x') come from the kernel's cached states

    def factor(self) -> torch.Tensor:
        """L = strictly-lower part of `lower` + diag(exp(log_diag))."""
        diag = torch.diag(torch.exp(self.log_diag))
        return diag if self.lower is None else diag + torch.tril(self.lower, -1)

    def _mean_shift(self, grad_x: torch.Tensor, e: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        """-eps^2/2 L L^T dU(x) for rows of `grad_x`."""
        return -0.5 * e * e * ((grad_x @ L) @ L.T)

    def forward_move(self, x, grad_x, z0, eps, grad_fn) -> Move:
        e, d_log_eps = _eps(eps, x)
        L = self.factor()
        x_new = x + self._mean_shift(grad_x, e, L) + e * (z0 @ L.T)
        log_det = self.log_diag.sum() + d_log_eps
        return Move(x_new, log_normal(z0) - log_det, log_det, z0, 0)

    def log_density(self, x, grad_x, x_new, eps, grad_fn) -> torch.Tensor:
        e, d_log_eps = _eps(eps, x)
        L = self.factor()
        r = (x_new - x - self._mean_shift(grad_x, e, L)) / e
        z0 = torch.linalg.solve_triangular(L, r.T, upper=False).T
        return log_normal(z0) - self.log_diag.sum() - d_log_eps


__all__ = ["AdaptiveMALAProposal", "AdaptiveMALAConfig"]

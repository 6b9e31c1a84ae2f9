"""The mass matrix M of HMC and the preconditioner of MALA, given by its inverse M^-1 (diagonal or dense).

`inv_mass` is a tensor of the event shape (diagonal: M^-1 = diag(inv_mass)) or `[d, d]`
with d the flattened event size (dense). Dense matrices are applied through the Cholesky
factor L of M^-1 = L L^T: momenta p = L^-T z ~ N(0, M), preconditioned noise L z ~ N(0, M^-1).
"""
from __future__ import annotations

from typing import Optional

import torch


def check_inv_mass(value, event_shape: torch.Size) -> Optional[torch.Tensor]:
    """`value` as a detached tensor after checking its shape (scalar, event shape, or `[d, d]`) and positivity."""
    if value is None:
        return None
    value = torch.as_tensor(value).detach()
    d = event_shape.numel()
    if value.dim() == 0 or value.shape == event_shape:
        if not torch.all(value > 0):
            raise ValueError("a diagonal inv_mass must be positive")
        return value
    if value.shape == (d, d) and len(event_shape) >= 1:
        sym = torch.allclose(value, value.T, rtol=1e-5, atol=1e-8 * float(value.abs().max()))
        if not sym or torch.linalg.cholesky_ex(value.double())[1] != 0:
            raise ValueError("a dense inv_mass must be symmetric positive definite")
        return value
    raise ValueError(f"inv_mass must have the event shape {list(event_shape)} (diagonal) or [{d}, {d}] (dense), "
                     f"got {list(value.shape)}")


class Metric:
    """M^-1 in the dtype and device of the positions it acts on; all methods take `[chains, *event]`."""

    def __init__(self, inv_mass: Optional[torch.Tensor], like: torch.Tensor):
        self.dense = inv_mass is not None and inv_mass.dim() == 2 and inv_mass.shape != like.shape[1:]
        if inv_mass is None:
            inv_mass = torch.ones((), dtype=like.dtype, device=like.device)
        self.inv_mass = inv_mass.to(dtype=like.dtype, device=like.device)
        if self.dense:
            chol = torch.linalg.cholesky(inv_mass.to(torch.float64))
            self.chol = chol.to(dtype=like.dtype, device=like.device)          # L, L L^T = M^-1
            self.log_det_inv_mass = 2.0 * torch.log(torch.diagonal(chol)).sum().to(like.dtype)
        else:
            self.inv_mass = self.inv_mass.expand(like.shape[1:]).contiguous()  # identity too: one shape to compile
            self.sqrt_inv_mass = self.inv_mass.sqrt()
            self.log_det_inv_mass = torch.log(self.inv_mass).sum()

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def apply_inv_mass(self, v: torch.Tensor) -> torch.Tensor:
        """M^-1 v (the velocity of momentum v, or the preconditioned gradient)."""
        if not self.dense:
            return self.inv_mass * v
        return (self._flat(v) @ self.inv_mass.T).reshape(v.shape)

    def sample_momentum(self, z: torch.Tensor) -> torch.Tensor:
        """p ~ N(0, M) from z ~ N(0, I)."""
        if not self.dense:
            return z / self.sqrt_inv_mass
        # p = L^-T z: solve L^T p = z for every chain
        p = torch.linalg.solve_triangular(self.chol.T, self._flat(z).T, upper=True).T
        return p.reshape(z.shape)

    def scale_noise(self, z: torch.Tensor) -> torch.Tensor:
        """L z ~ N(0, M^-1) from z ~ N(0, I)."""
        if not self.dense:
            return self.sqrt_inv_mass * z
        return (self._flat(z) @ self.chol.T).reshape(z.shape)

    def kinetic_energy(self, p: torch.Tensor) -> torch.Tensor:
        """K(p) = p^T M^-1 p / 2 per chain."""
        return 0.5 * (p * self.apply_inv_mass(p)).flatten(1).sum(1)

    def whitened_sq_norm(self, r: torch.Tensor) -> torch.Tensor:
        """r^T M r per chain: the squared norm of L^-1 r."""
        if not self.dense:
            return (r * r / self.inv_mass).flatten(1).sum(1)
        w = torch.linalg.solve_triangular(self.chol, self._flat(r).T, upper=False)
        return (w * w).sum(0)

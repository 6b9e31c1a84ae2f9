"""The coupling stack z = f(z0; x, U) of the learned sampler (thesis eqs. 4.1-4.3) and its exact inverse.

Each of the N z-update steps has two affine half-steps. The half-step that keeps the
coordinates selected by a 0/1 mask `k` fixed updates the others as (eq. 4.1, 4.2)

    z <- k * z + (1 - k) * ( z * exp(S(xi)) - eps' * ( dU(x + R(zeta)) * exp(Q(xi)) + T(xi) ) )

with zeta = (x, k * z), xi = (x, k * z, dU(x + R(zeta))) and eps' = eps / (2N). The first
half-step of step n keeps m_n fixed, the second keeps its complement. Everything the
coefficients depend on is the fixed half, so each half-step inverts exactly:
z_upd = (z_upd' + eps' * shift) * exp(-S), with S and the shift recomputed from the fixed
half. The log-determinant is the sum of S over updated coordinates (eq. 4.3, without
the constant of the x = x + eps z scaling, which `LearnedProposal` adds).

With `use_grad=False` the gradient and Q, R disappear (appendix C.1 variant 1: a
RealNVP flow conditioned on x): z <- k z + (1 - k)(z exp(S) - eps' T).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .networks import StepIndexedMLP, squash

GradFn = Callable[[torch.Tensor], torch.Tensor]


def random_masks(dim: int, num_steps: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One random half-mask per z-update step, `[num_steps, dim]` of 0/1 with floor(dim/2) ones each."""
    masks = torch.zeros(num_steps, dim)
    for n in range(num_steps):
        masks[n, torch.randperm(dim, generator=generator)[: dim // 2]] = 1.0
    return masks


def checkerboard_masks(event_shape: Sequence[int], num_steps: int) -> torch.Tensor:
    """A fixed checkerboard over the last two event dims (image-shaped targets), repeated for every step."""
    if len(event_shape) < 2:
        raise ValueError(f"a checkerboard mask needs an event shape with at least 2 dims, got {tuple(event_shape)}")
    h, w = event_shape[-2], event_shape[-1]
    board = ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2).float()
    full = board.expand(*event_shape).reshape(-1)
    return full.expand(num_steps, -1).clone()


class CouplingFlow(nn.Module):
    """N coupling steps (eqs. 4.1-4.2) with a step-indexed network for (S, Q, T) and one for R.

    Parameters
    ----------
    dim
        Flattened event size d.
    num_steps
        N, the number of z-update steps.
    width, depth
        The MLP width and number of layers (appendix C.2: depth 5).
    masks
        `[N, d]` 0/1 tensor, stored as a buffer (saved with `state_dict`).
    use_grad
        False gives variant 1 of appendix C.1 (no target gradient, no Q and R).
    squash_inputs
        Pass x and dU through asinh before the networks (see `networks.squash`).
    """

    def __init__(self, dim: int, num_steps: int, width: int, masks: torch.Tensor, depth: int = 5,
                 use_grad: bool = True, squash_inputs: bool = True):
        super().__init__()
        if masks.shape != (num_steps, dim):
            raise ValueError(f"masks must have shape [{num_steps}, {dim}], got {list(masks.shape)}")
        self.dim, self.num_steps, self.use_grad, self.squash_inputs = dim, num_steps, use_grad, squash_inputs
        self.register_buffer("masks", masks.float().clone())
        if use_grad:
            self.sqt = StepIndexedMLP(3 * dim, 3 * dim, width, num_steps, depth)
            self.r = StepIndexedMLP(2 * dim, dim, width, num_steps, depth)
        else:
            self.sqt = StepIndexedMLP(2 * dim, 2 * dim, width, num_steps, depth)
            self.r = None

    @property
    def grad_evals_per_pass(self) -> int:
        """Target-gradient evaluations of one forward (or one inverse) pass: one per half-step."""
        return 2 * self.num_steps if self.use_grad else 0

    def _inp(self, v: torch.Tensor) -> torch.Tensor:
        return squash(v) if self.squash_inputs else v

    def _coefficients(self, z: torch.Tensor, x_in: torch.Tensor, x: torch.Tensor, keep: torch.Tensor, n: int,
                      grad_fn: Optional[GradFn]) -> Tuple[torch.Tensor, torch.Tensor]:
        """S and the shift dU(x + R) exp(Q) + T of the half-step of step `n` that keeps `keep` fixed."""
        zk = torch.where(keep > 0, z, torch.zeros_like(z))
        if not self.use_grad:
            s, t = self.sqt(torch.cat([x_in, zk], 1), n).chunk(2, 1)
            return s, t
        r = self.r(torch.cat([x_in, zk], 1), n)
        g = grad_fn(x + r)
        s, q, t = self.sqt(torch.cat([x_in, zk, self._inp(g)], 1), n).chunk(3, 1)
        return s, g * torch.exp(q) + t

    def _half_steps(self, reverse: bool):
        order = range(self.num_steps - 1, -1, -1) if reverse else range(self.num_steps)
        for n in order:
            m = self.masks[n]
            pair = ((m, n), (1.0 - m, n))
            yield from (pair[::-1] if reverse else pair)

    def forward(self, z0: torch.Tensor, x: torch.Tensor, eps_half: torch.Tensor,
                grad_fn: Optional[GradFn] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """z^N and log|dz^N/dz^0| (eq. 4.3 without the eps constant) for base draws `z0` `[B, d]` at `x`.

        `eps_half` is eps' = eps / (2N), a scalar or `[B, 1]` tensor.
        """
        x_in = self._inp(x)
        z, logdet = z0, z0.new_zeros(z0.shape[0])
        for keep, n in self._half_steps(reverse=False):
            s, shift = self._coefficients(z, x_in, x, keep, n, grad_fn)
            upd = keep == 0
            z = torch.where(upd, z * torch.exp(s) - eps_half * shift, z)
            logdet = logdet + torch.where(upd, s, torch.zeros_like(s)).sum(1)
        return z, logdet

    def inverse(self, z: torch.Tensor, x: torch.Tensor, eps_half: torch.Tensor,
                grad_fn: Optional[GradFn] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """z^0 = f^{-1}(z; x) and log|dz^N/dz^0| of the forward map at that z^0 (the same S values)."""
        x_in = self._inp(x)
        logdet = z.new_zeros(z.shape[0])
        for keep, n in self._half_steps(reverse=True):
            s, shift = self._coefficients(z, x_in, x, keep, n, grad_fn)
            upd = keep == 0
            z = torch.where(upd, (z + eps_half * shift) * torch.exp(-s), z)
            logdet = logdet + torch.where(upd, s, torch.zeros_like(s)).sum(1)
        return z, logdet


__all__ = ["CouplingFlow", "random_masks", "checkerboard_masks", "GradFn"]

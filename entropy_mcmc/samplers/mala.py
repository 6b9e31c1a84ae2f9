"""Metropolis-adjusted Langevin: x' = x - s^2/2 M^-1 dU(x) + s L z, L L^T = M^-1 (thesis section 4.3;
with M = I the plain MALA of step s)."""
from __future__ import annotations

import math

import torch

from .base import ChainState
from .metropolis import PreconditionedKernel, Proposal, broadcast_step_size


class MALAKernel(PreconditionedKernel):
    """Langevin proposal N(x - s^2/2 M^-1 dU(x), s^2 M^-1) corrected by Metropolis-Hastings; one gradient
    evaluation per step. `inv_mass` = M^-1 preconditions it: None (identity), diagonal or dense `[d, d]`."""

    def proposal_log_density(self, x: torch.Tensor, grad_x: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
        """log q(x_new | x) = log N(x_new; x - s^2/2 M^-1 dU(x), s^2 M^-1), with all constants."""
        return self._log_q(x, grad_x, x_new, broadcast_step_size(self.step_size, x), self.metric(x))

    def _log_q(self, x, grad_x, x_new, s, metric) -> torch.Tensor:
        d = x[0].numel()
        r = (x_new - (x - 0.5 * s * s * metric.apply_inv_mass(grad_x))) / s
        log_s = torch.log(s).flatten()
        return (-0.5 * metric.whitened_sq_norm(r) - d * log_s - 0.5 * metric.log_det_inv_mass
                - 0.5 * d * math.log(2 * math.pi))

    def propose(self, state: ChainState) -> Proposal:
        x = state.position
        return self._propose(state, self.randn_like(x), broadcast_step_size(self.step_size, x), self.metric(x))

    def transition(self, x, energy, grad, noise, u, step_size, metric) -> tuple:
        state = ChainState(x, energy, grad)
        return self.finish(state, self._propose(state, noise, step_size, metric), u)

    def _propose(self, state: ChainState, noise: torch.Tensor, s: torch.Tensor, metric) -> Proposal:
        x, g = state.position, state.grad
        x_new = x - 0.5 * s * s * metric.apply_inv_mass(g) + s * metric.scale_noise(noise)
        cand = self.evaluate(x_new)
        log_correction = self._log_q(x_new, cand.grad, x, s, metric) - self._log_q(x, g, x_new, s, metric)
        return Proposal(cand, log_correction, 1)

    def proposal_entropy(self, state: ChainState) -> torch.Tensor:
        """Entropy of the Gaussian proposal per chain (nats): d/2 (1 + log 2pi) + d log s + log|M^-1|/2;
        it does not depend on the gradient."""
        x = state.position
        return gaussian_entropy(self.step_size, x) + 0.5 * self.metric(x).log_det_inv_mass


def gaussian_entropy(step_size, x: torch.Tensor) -> torch.Tensor:
    """Entropy of N(m, s^2 I) in the event dimension of `x`, per chain (nats)."""
    d = x[0].numel()
    s = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(x.shape[0])
    return 0.5 * d * (1.0 + math.log(2 * math.pi)) + d * torch.log(s)

"""Metropolis-adjusted Langevin: x' = x - s^2/2 dU(x) + s z (MALA with step s, thesis section 4.3)."""
from __future__ import annotations

import math

import torch

from .base import ChainState
from .metropolis import MetropolisHastingsKernel, Proposal, broadcast_step_size, gaussian_log_density
from .rwm import _gaussian_entropy


class MALA(MetropolisHastingsKernel):
    """Langevin proposal corrected by Metropolis-Hastings; one gradient evaluation per step."""

    def proposal_log_density(self, x: torch.Tensor, grad_x: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
        """log q(x_new | x) = log N(x_new; x - s^2/2 dU(x), s^2 I), including the 2pi constant."""
        s = broadcast_step_size(self.step_size, x)
        d = x[0].numel()
        mean = x - 0.5 * s * s * grad_x
        return gaussian_log_density(x_new - mean, s) - 0.5 * d * math.log(2 * math.pi)

    def propose(self, state: ChainState) -> Proposal:
        x, g = state.position, state.grad
        s = broadcast_step_size(self.step_size, x)
        x_new = x - 0.5 * s * s * g + s * self.randn_like(x)
        cand = self.evaluate(x_new)
        log_correction = (self.proposal_log_density(x_new, cand.grad, x)
                          - self.proposal_log_density(x, g, x_new))
        return Proposal(cand, log_correction, 1)

    def proposal_entropy(self, state: ChainState) -> torch.Tensor:
        """Entropy of the Gaussian proposal per chain (nats); it does not depend on the gradient."""
        return _gaussian_entropy(self.step_size, state.position)

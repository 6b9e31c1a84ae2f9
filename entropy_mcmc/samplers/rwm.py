"""Random-walk Metropolis: x' = x + s z, z ~ N(0, I); the proposal is symmetric."""
from __future__ import annotations

import torch

from .base import ChainState
from .mala import gaussian_entropy
from .metropolis import MetropolisHastingsKernel, Proposal, broadcast_step_size


class RandomWalkMetropolis(MetropolisHastingsKernel):
    """Gaussian random-walk proposal with step size `s` (scalar or per chain); no gradients."""

    needs_grad = False

    def propose(self, state: ChainState) -> Proposal:
        x = state.position
        s = broadcast_step_size(self.step_size, x)
        cand = self.evaluate(x + s * self.randn_like(x))
        return Proposal(cand, torch.zeros_like(state.energy), 0)

    def proposal_entropy(self, state: ChainState) -> torch.Tensor:
        """Entropy of N(x, s^2 I) per chain (nats)."""
        return gaussian_entropy(self.step_size, state.position)

"""Random-walk Metropolis: x' = x + s z, z ~ N(0, I); the proposal is symmetric."""
from __future__ import annotations

import torch

from .base import ChainState
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
        return _gaussian_entropy(self.step_size, state.position)


def _gaussian_entropy(step_size, x: torch.Tensor) -> torch.Tensor:
    import math

    d = x[0].numel()
    s = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(x.shape[0])
    return 0.5 * d * (1.0 + math.log(2 * math.pi)) + d * torch.log(s)

"""Hamiltonian Monte Carlo: leapfrog with a fixed number of steps and a diagonal or dense mass matrix."""
from __future__ import annotations

from typing import Tuple

import torch

from ..targets.base import Target
from .base import ChainState, Seed, StepInfo
from .metropolis import PreconditionedKernel, Proposal, broadcast_step_size


class HMCKernel(PreconditionedKernel):
    """HMC with momentum p ~ N(0, M); `num_steps` gradient evaluations per step.

    `inv_mass` = M^-1: None (identity), the event shape (diagonal) or `[d, d]` (dense).
    The MH correction is the kinetic energy change K(p) - K(p'), K(p) = p^T M^-1 p / 2,
    so the acceptance is min(1, exp(-(H' - H))).
    """

    def __init__(self, target: Target, step_size=0.1, num_steps: int = 10, inv_mass=None, seed: Seed = None,
                 divergence_threshold: float = 1000.0):
        super().__init__(target, step_size, inv_mass, seed, divergence_threshold)
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        self.num_steps = int(num_steps)

    @property
    def grads_per_transition(self) -> int:
        return self.num_steps

    def propose(self, state: ChainState) -> Proposal:
        x = state.position
        metric = self.metric(x)
        p0 = metric.sample_momentum(self.randn_like(x))
        return self._proposal(state, p0, self.integrate(state, p0, self.num_steps), metric)

    def transition(self, x, energy, grad, noise, u, step_size, metric) -> tuple:
        state = ChainState(x, energy, grad)
        p0 = metric.sample_momentum(noise)
        end = self._leapfrog(x, grad, p0, step_size, metric, self.num_steps)
        return self.finish(state, self._proposal(state, p0, end, metric), u)

    def _proposal(self, state: ChainState, p0: torch.Tensor, end, metric) -> Proposal:
        """The proposal from the momentum p0 and where the trajectory `end`s, (x', U(x'), dU(x'), p')."""
        x, u, g, p = end
        k0, k1 = metric.kinetic_energy(p0), metric.kinetic_energy(p)
        return Proposal(ChainState(x, u, g), k0 - k1, self.num_steps,
                        {"energy": torch.where(torch.isfinite(u), u + k1, u), "initial_energy": state.energy + k0})

    def integrate(self, state: ChainState, p: torch.Tensor, num_steps: int):
        """`num_steps` leapfrog steps from the state with momentum p: (x', U(x'), dU(x'), p')."""
        x = state.position
        return self._leapfrog(x, state.grad, p, broadcast_step_size(self.step_size, x), self.metric(x), num_steps)

    def _leapfrog(self, x, g, p, s, metric, num_steps: int):
        if metric.dense:
            def drift(p):
                return s * metric.apply_inv_mass(p)
        else:
            s_inv_mass = s * metric.inv_mass

            def drift(p):
                return s_inv_mass * p
        p = p - 0.5 * s * g
        for _ in range(num_steps - 1):
            x = x + drift(p)
            p = p - s * self.target.grad(x)  # inner steps need no energy
        x = x + drift(p)
        u, g = self.target.energy_and_grad(x)
        return x, u, g, p - 0.5 * s * g

    def step(self, state: ChainState) -> Tuple[ChainState, StepInfo]:
        new_state, info = super().step(state)
        # the Hamiltonian of the state the chain now holds, as Stan and Pyro report it
        e = info.extras
        e["energy"] = torch.where(info.accepted, e["energy"], e.pop("initial_energy"))
        return new_state, info

"""Hamiltonian Monte Carlo: leapfrog with a fixed number of steps and a diagonal mass matrix."""
from __future__ import annotations

from typing import Tuple

import torch

from ..targets.base import Target
from .base import ChainState, Seed, StepInfo
from .metropolis import MetropolisHastingsKernel, Proposal, broadcast_step_size, sum_event


class HMC(MetropolisHastingsKernel):
    """HMC with momentum p ~ N(0, M), M = diag(1 / inv_mass); `num_steps` gradient evaluations per step.

    The MH correction is the kinetic energy change K(p) - K(p'), K(p) = p^T M^-1 p / 2,
    so the acceptance is min(1, exp(-(H' - H))).
    """

    def __init__(self, target: Target, step_size=0.1, num_steps: int = 10, inv_mass=None, seed: Seed = None,
                 divergence_threshold: float = 1000.0):
        super().__init__(target, step_size, seed, divergence_threshold)
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        self.num_steps = int(num_steps)
        self.inv_mass = inv_mass

    @property
    def inv_mass(self):
        return self._inv_mass

    @inv_mass.setter
    def inv_mass(self, value) -> None:
        if value is not None:
            value = torch.as_tensor(value).detach()
            if value.shape != self.target.event_shape and value.dim() != 0:
                raise ValueError(f"inv_mass must have the event shape {list(self.target.event_shape)}, "
                                 f"got {list(value.shape)}")
            if not torch.all(value > 0):
                raise ValueError("inv_mass must be positive")
        self._inv_mass = value

    def kinetic_energy(self, p: torch.Tensor, inv_mass) -> torch.Tensor:
        return 0.5 * sum_event(p * p * inv_mass)

    def propose(self, state: ChainState) -> Proposal:
        x, g = state.position, state.grad
        s = broadcast_step_size(self.step_size, x)
        inv_mass = (torch.ones((), dtype=x.dtype, device=x.device) if self.inv_mass is None
                    else self.inv_mass.to(dtype=x.dtype, device=x.device))
        p0 = self.randn_like(x) * torch.rsqrt(inv_mass)
        s_inv_mass = s * inv_mass
        p = p0 - 0.5 * s * g
        for i in range(self.num_steps - 1):
            x = x + s_inv_mass * p
            p = p - s * self.target.grad(x)  # inner steps need no energy
        x = x + s_inv_mass * p
        u, g = self.target.energy_and_grad(x)
        p = p - 0.5 * s * g
        k0, k1 = self.kinetic_energy(p0, inv_mass), self.kinetic_energy(p, inv_mass)
        return Proposal(ChainState(x, u, g), k0 - k1, self.num_steps,
                        {"energy": torch.where(torch.isfinite(u), u + k1, u), "initial_energy": state.energy + k0})

    def step(self, state: ChainState) -> Tuple[ChainState, StepInfo]:
        new_state, info = super().step(state)
        # the Hamiltonian of the state the chain now holds, as Stan and Pyro report it
        e = info.extras
        e["energy"] = torch.where(info.accepted, e["energy"], e.pop("initial_energy"))
        return new_state, info

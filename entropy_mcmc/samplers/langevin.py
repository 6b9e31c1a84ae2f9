"""Unadjusted Langevin dynamics at temperature T: x' = x - s^2/2 dU(x) + sqrt(T) s z.

No accept step, so the chain is biased by O(s^2); at T = 1 and small s it
approaches p(x), at T != 1 p(x)^(1/T). `temperature` is a plain attribute so an
annealing schedule (thesis section 3.3) can change it between steps.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch

from ..targets.base import Target
from .base import ChainState, Seed, StepInfo
from .metropolis import MetropolisHastingsKernel, broadcast_step_size, select_chains


class UnadjustedLangevin(MetropolisHastingsKernel):
    """Langevin steps without Metropolis-Hastings; `is_calibrated` is False."""

    is_calibrated = False

    def __init__(self, target: Target, step_size=0.1, temperature: float = 1.0, seed: Seed = None):
        super().__init__(target, step_size, seed)
        self.temperature = temperature

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"temperature must be positive and finite, got {value!r}")
        self._temperature = float(value)

    def step(self, state: ChainState) -> Tuple[ChainState, StepInfo]:
        x, g = state.position, state.grad
        s = broadcast_step_size(self.step_size, x)
        x_new = x - 0.5 * s * s * g + math.sqrt(self.temperature) * s * self.randn_like(x)
        cand = self.evaluate(x_new)
        ok = torch.isfinite(cand.energy) & torch.isfinite(x_new).flatten(1).all(1)
        # A non-finite step keeps the old position (a divergence) instead of poisoning the chain.
        new_state = select_chains(ok, cand, state)
        return new_state, StepInfo(ok.to(x.dtype), ok, ~ok, 1)

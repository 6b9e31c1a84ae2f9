"""Step-size jitter after warmup: each chain's step size is redrawn uniformly around its adapted value."""
from __future__ import annotations

from typing import Optional

import torch

from .base import KernelWrapper


class StepSizeJitter(KernelWrapper):
    """After warmup, each chain's step size is redrawn uniformly in [s (1 - j), s (1 + j)] before every transition.

    Stan's `stepsize_jitter`, per chain. The draw does not depend on the state, so every
    transition is a mixture of MH kernels that each leave the target invariant. For HMC it
    breaks the resonance of a fixed path length L s with a posterior direction's period
    (German BLR, 256 chains: min bulk ESS 6k without jitter, 180k with j = 0.5; see
    `benchmarks/hmc_mass_jitter.py`). Warmup runs unjittered, so dual averaging sees the
    step size it sets. The nominal s is read from the base kernel at `end_warmup` and restored
    after every jittered step, so repeated runs never drift; each draw's `step_size` statistic
    is the jittered value that draw used.
    """

    def __init__(self, kernel, jitter: float):
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"step-size jitter must lie in [0, 1), got {jitter!r}")
        super().__init__(kernel)
        if getattr(kernel.base, "step_size", None) is None:
            raise ValueError(f"{type(kernel.base).__name__} has no step_size to jitter")
        self.jitter = float(jitter)
        self._nominal: Optional[torch.Tensor] = None

    def start_warmup(self, num_steps: int) -> None:
        self._nominal = None
        self.kernel.start_warmup(num_steps)

    def end_warmup(self) -> None:
        self.kernel.end_warmup()
        self._nominal = torch.as_tensor(self.base.step_size).clone()

    def step(self, state):
        if self._nominal is None or self.jitter == 0:
            return self.kernel.step(state)
        base = self.base
        x = state.position
        u = torch.rand(x.shape[0], generator=base.generator, dtype=torch.float64, device=x.device)
        base.step_size = self._nominal.to(u.device) * (1.0 + self.jitter * (2.0 * u - 1.0))
        try:
            return self.kernel.step(state)
        finally:
            base.step_size = self._nominal

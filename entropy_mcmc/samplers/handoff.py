"""Warmup with one kernel, sampling with another: `WarmupHandoff(kernel, warmup_kernel)`.

A trained proposal (the learned sampler, thesis section 4.3) is fitted to the typical set:
started outside it, where the flow was never trained, it may propose nothing acceptable and a
chain stays where it started, exact but useless. During warmup the chains are moved into the
typical set by an adapted gradient kernel instead (MALA with a dense preconditioner, step size
dual-averaged), then handed to the trained kernel, whose own step size (eps) is what it was
trained with and is not touched. Warmup draws are discarded, so the handoff changes nothing
about which distribution the kept draws target: after warmup every step is one of `kernel`.
"""
from __future__ import annotations

from typing import Tuple

from .base import Seed, StepInfo, TransitionKernel, make_generator
from .mixture import _missing


class WarmupHandoff(TransitionKernel):
    """Steps of `warmup_kernel` between `start_warmup(n > 0)` and `end_warmup()`, of `kernel` otherwise.

    Parameters
    ----------
    kernel
        What samples after warmup (e.g. the learned sampler, or its mixture with the warmup kernel).
    warmup_kernel
        What runs the warmup, usually wrapped in `StepSizeAdaptation` (its adaptation runs
        during warmup and freezes at `end_warmup`). Both kernels receive the warmup hooks, which may
        therefore reach a kernel twice when `kernel` is a mixture that contains `warmup_kernel`.

    Notes
    -----
    Like `StepSizeAdaptation`, a new handoff is in warmup until `start_warmup`/`end_warmup` say
    otherwise (the runner and `PyroKernel` call both); `start_warmup(0)` goes straight to `kernel`.
    Both kernels draw from the handoff's generator and take the same kind of state.
    """

    def __init__(self, kernel: TransitionKernel, warmup_kernel: TransitionKernel, seed: Seed = None):
        for what, k in (("kernel", kernel), ("warmup_kernel", warmup_kernel)):
            if not isinstance(k, TransitionKernel):
                raise TypeError(f"WarmupHandoff: {what} must be an entropy_mcmc TransitionKernel, got "
                                f"{type(k).__name__}")
        super().__init__(seed)
        self.kernel = kernel
        self.warmup_kernel = warmup_kernel
        self.parts = (warmup_kernel, kernel)
        self.warming_up = True

    @property
    def is_calibrated(self) -> bool:
        return self.kernel.is_calibrated

    @property
    def current(self) -> TransitionKernel:
        """The kernel the next step runs."""
        return self.warmup_kernel if self.warming_up else self.kernel

    def reseed(self, seed: Seed, device=None) -> None:
        super().reseed(seed, device)
        for k in self.parts:
            k.reseed(self.generator, device)

    def init(self, position):
        """Both kernels' initial states (the trained kernel moves its network to the positions' dtype and device
        there); the one with the most cached fields is returned."""
        if self.generator is None or self.generator.device != position.device:
            self.reseed(self._seed if self.generator is None else make_generator(self._seed, position.device),
                        position.device)
        states = [k.init(position) for k in self.parts]
        return min(states, key=lambda s: len(_missing(s)))

    def start_warmup(self, num_steps: int) -> None:
        for k in self.parts:
            k.start_warmup(num_steps)
        self.warming_up = num_steps > 0
        if not self.warming_up:  # no warmup: freeze the warmup kernel's adaptation before it joins a mixture
            self.warmup_kernel.end_warmup()

    def end_warmup(self) -> None:
        if self.warming_up:
            self.warmup_kernel.end_warmup()
        self.kernel.end_warmup()  # e.g. a step-size jitter takes its nominal value here
        self.warming_up = False

    def step(self, state) -> Tuple[object, StepInfo]:
        return self.current.step(state)

    def refresh(self, state):
        return self.current.refresh(state)

    def record(self, state):
        return self.kernel.record(state)


__all__ = ["WarmupHandoff"]

"""Warmup-only step-size (and diagonal mass-matrix) adaptation wrapped around any kernel with a step size.

Step size: dual averaging toward a target acceptance rate (Hoffman & Gelman 2014,
section 3.2, as in Stan and BlackJAX): with statistic h_t = delta - alpha_t,

    H_t = (1 - 1/(t + t0)) H_{t-1} + h_t / (t + t0)
    log s_t = mu - sqrt(t) / gamma * H_t
    log s̄_t = t^-kappa log s_t + (1 - t^-kappa) log s̄_{t-1}

with mu = log(10 s_0). `per_chain=True` keeps one schedule per chain; otherwise
alpha_t is the mean acceptance over chains. At `end_warmup` the step size is
frozen at s̄.

Mass matrix (HMC only): Stan's windowed scheme. After an initial buffer, positions
are pooled over chains in doubling windows; at each window's end the inverse mass
becomes the regularized variance n/(n+5) var + 1e-3 * 5/(n+5) and dual averaging restarts.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from .base import StepInfo, TransitionKernel


class DualAveraging:
    """The dual-averaging recursion on log step size, for a scalar or a `[chains]` step size."""

    def __init__(self, initial_step_size: torch.Tensor, target_accept: float, gamma: float = 0.05,
                 t0: float = 10.0, kappa: float = 0.75):
        self.target_accept, self.gamma, self.t0, self.kappa = target_accept, gamma, t0, kappa
        self.reset(initial_step_size)

    def reset(self, step_size: torch.Tensor) -> None:
        log_s = torch.log(torch.as_tensor(step_size, dtype=torch.float64))
        self.mu = math.log(10.0) + log_s
        self.t = 0
        self.h_bar = torch.zeros_like(log_s)
        self.log_s = log_s
        self.log_s_bar = torch.zeros_like(log_s)

    def update(self, accept_prob: torch.Tensor) -> torch.Tensor:
        self.t += 1
        t, w = self.t, 1.0 / (self.t + self.t0)
        alpha = accept_prob.to(torch.float64).nan_to_num(0.0)
        self.h_bar = (1 - w) * self.h_bar + w * (self.target_accept - alpha)
        self.log_s = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        eta = t ** (-self.kappa)
        self.log_s_bar = eta * self.log_s + (1 - eta) * self.log_s_bar
        return torch.exp(self.log_s)

    @property
    def final_step_size(self) -> torch.Tensor:
        return torch.exp(self.log_s_bar if self.t > 0 else self.log_s)


def mass_matrix_windows(num_warmup: int, init_buffer: int = 75, term_buffer: int = 50,
                        base_window: int = 25) -> List[Tuple[int, int]]:
    """Slow windows `(start, end]` in warmup steps (1-based), following Stan's doubling schedule."""
    if num_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer, term_buffer = int(0.15 * num_warmup), int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    windows, start, size = [], init_buffer, base_window
    last = num_warmup - term_buffer
    while start < last:
        end = start + size
        if end + 2 * size > last:  # the next window would not fit: stretch this one to the end
            end = last
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


class StepSizeAdaptation(TransitionKernel):
    """Wraps a kernel with a `step_size`; adapts it during warmup, then freezes it.

    Args:
        kernel: the kernel to adapt (RWM, MALA, HMC, the learned sampler...).
        target_accept: the acceptance rate to reach (Stan's delta).
        per_chain: one step size per chain instead of one shared step size.
        adapt_mass_matrix: also adapt a diagonal `inv_mass` (kernels that have one, i.e. HMC).
        gamma: dual-averaging shrinkage; default 0.05 (Stan) for a shared step size and 0.2 per
            chain, where the single-chain acceptance is noisy and the fluctuating iterate would
            otherwise average to a step size that overshoots the target acceptance.
    """

    def __init__(self, kernel: TransitionKernel, target_accept: float = 0.8, per_chain: bool = False,
                 adapt_mass_matrix: bool = False, gamma: Optional[float] = None, t0: float = 10.0,
                 kappa: float = 0.75):
        super().__init__()
        if not hasattr(kernel, "step_size"):
            raise ValueError(f"{type(kernel).__name__} has no step_size to adapt")
        if not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}")
        if adapt_mass_matrix and not hasattr(kernel, "inv_mass"):
            raise ValueError(f"{type(kernel).__name__} has no inv_mass to adapt")
        self.kernel = kernel
        self.target_accept = target_accept
        self.per_chain = per_chain
        self.adapt_mass_matrix = adapt_mass_matrix
        gamma = (0.2 if per_chain else 0.05) if gamma is None else gamma
        self._da_args = dict(gamma=gamma, t0=t0, kappa=kappa)
        self.adapting = True
        self._da: Optional[DualAveraging] = None
        self._windows: List[int] = []
        self._step = 0

    # Everything that is not adaptation belongs to the wrapped kernel.
    def __getattr__(self, name):
        if name == "kernel":
            raise AttributeError(name)
        return getattr(self.kernel, name)

    @property
    def is_calibrated(self) -> bool:
        return self.kernel.is_calibrated

    @property
    def step_size(self):
        return self.kernel.step_size

    def reseed(self, seed, device=None) -> None:
        self.kernel.reseed(seed, device)

    def init(self, position: torch.Tensor):
        state = self.kernel.init(position)
        s = torch.as_tensor(self.kernel.step_size, dtype=torch.float64)
        if self.per_chain and s.dim() == 0:
            s = s.expand(position.shape[0]).clone()
        self._da = DualAveraging(s, self.target_accept, **self._da_args)
        self._reset_window()
        return state

    def start_warmup(self, num_steps: int) -> None:
        self.adapting = True
        self._step = 0
        self._windows = mass_matrix_windows(num_steps) if self.adapt_mass_matrix else []
        self._reset_window()

    def _reset_window(self) -> None:
        self._n, self._sum, self._sumsq = 0, None, None

    def _accumulate(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64)
        s, ss = x.sum(0), (x * x).sum(0)
        self._sum = s if self._sum is None else self._sum + s
        self._sumsq = ss if self._sumsq is None else self._sumsq + ss
        self._n += x.shape[0]

    def step(self, state) -> Tuple[object, StepInfo]:
        state, info = self.kernel.step(state)
        if not self.adapting:
            return state, info
        self._step += 1
        alpha = info.acceptance_prob if self.per_chain else info.acceptance_prob.mean()
        self.kernel.step_size = self._da.update(alpha)
        if self._windows:
            start, end = self._windows[0]
            if self._step > start:
                self._accumulate(state.position)
            if self._step == end:
                self._finish_window()
        return state, info

    def _finish_window(self) -> None:
        n = self._n
        mean = self._sum / n
        var = (self._sumsq / n - mean * mean).clamp_min(0.0) * n / max(n - 1, 1)
        self.kernel.inv_mass = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        self._windows.pop(0)
        self._reset_window()
        self._da.reset(self._da.final_step_size)

    def end_warmup(self) -> None:
        if self._da is not None and self._da.t > 0:
            self.kernel.step_size = self._da.final_step_size
        self.adapting = False
        self.kernel.end_warmup()

"""ChEES-HMC: HMC with jittered trajectory lengths, the length tuned over the ensemble of chains during warmup.

Hoffman, Radul & Sountsov (2021), "An adaptive-MCMC scheme for setting trajectory lengths in HMC"
(as `blackjax.chees_adaptation` implements it). Each transition integrates
n = ceil(u_t T / s) leapfrog steps, with u_t the t-th point of the base-2 Halton (van der
Corput) sequence in (0, 1), the same for every chain; n does not depend on the state, so every
transition is an exact HMC kernel and the chain is exact whatever T is.

During warmup `ChEESAdaptation` moves log T up the gradient of the ChEES criterion
ChEES(T) = E[(|x' - E x'|^2 - |x - E x|^2)^2] / 4 estimated over the chains: per chain

    g_i = u_t T (|x'_i - m'|_M^2 - |x_i - m|_M^2) (x'_i - m') . p'_i

(x the start, x' and p' the proposal's position and momentum, m' the acceptance-weighted mean
of the proposals, m the mean of the starts, |r|_M^2 = r^T M r: the criterion in the whitened
coordinates of the mass matrix, where (x' - m') . p' is unchanged), averaged with weights the
acceptance probabilities (0 for divergent chains), through Adam without momentum, each update of
log T clipped to +-0.35; the length used is exp of the running average of log T with weights
t^-1/2. For a standard Gaussian and exact dynamics E_u[ChEES(uT)] = d (1/2 - sin(2T) / (4T)), so
the criterion's optimum is the root of tan 2T = 2T, T = 2.2467 standard deviations.

The step size (dual averaging) and the diagonal mass matrix (Stan's windows) are adapted by
`StepSizeAdaptation` around this, as for the other kernels; its dual averaging reads the harmonic mean
of the chains' acceptance probabilities (as TFP reduces them for ChEES), so the one step size shared by
the ensemble is small enough for a chain started far in the tails to move. Each new mass matrix
restarts Adam and the running average, from T = 1: the criterion's scale and T's units change with it, and in the
whitened units a Gaussian's optimum is 2.2467. The registry builds
it as `build_kernel("hmc", target, adapt_path_length="chees")` (`--kernel hmc --adapt-path-length chees`);
`chees-hmc` is the same with BlackJAX's settings.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..targets.base import Target
from .base import ChainState, KernelWrapper, Seed, StepInfo, TransitionKernel
from .hmc import HMCKernel
from .metropolis import Proposal


def van_der_corput(i: int) -> float:
    """The i-th point (i >= 1) of the base-2 Halton sequence: i's binary digits mirrored after the point."""
    out, f = 0.0, 0.5
    while i:
        out += f * (i & 1)
        i >>= 1
        f *= 0.5
    return out


class ChEESHMC(HMCKernel):
    """HMC whose number of leapfrog steps is ceil(u_t T / s) with u_t from the Halton sequence (module docstring).

    Parameters
    ----------
    trajectory_length
        T, in the time units of the leapfrog (step size times steps); None: one step.
    max_num_steps
        Cap on the leapfrog steps of one transition.
    jitter
        U_t is drawn in [1 - jitter, 1] (1: the whole (0, 1), as ChEES-HMC).

    Notes
    -----
    `last_transition` holds (start, proposal position, proposal momentum, u_t) of the last step, for
    `ChEESAdaptation`. Statistics: `n_steps` (leapfrog steps) and `trajectory_length` (T) per draw.
    """

    def __init__(self, target: Target, step_size=0.1, trajectory_length: Optional[float] = None, inv_mass=None,
                 max_num_steps: int = 1000, jitter: float = 1.0, seed: Seed = None,
                 divergence_threshold: float = 1000.0):
        super().__init__(target, step_size, 1, inv_mass, seed, divergence_threshold)
        if isinstance(max_num_steps, bool) or int(max_num_steps) != max_num_steps or max_num_steps < 1:
            raise ValueError(f"max_num_steps must be a positive integer, got {max_num_steps!r}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must lie in [0, 1], got {jitter!r}")
        if trajectory_length is not None and not (math.isfinite(trajectory_length) and trajectory_length > 0):
            raise ValueError(f"trajectory_length must be positive and finite, got {trajectory_length!r}")
        self.max_num_steps = int(max_num_steps)
        self.jitter = float(jitter)
        self.trajectory_length = float(trajectory_length) if trajectory_length is not None else \
            float(torch.as_tensor(self.step_size).mean())
        self.halton_index = 0
        self.last_transition = None

    def init(self, position: torch.Tensor) -> ChainState:
        self.halton_index = 0
        return super().init(position)

    def propose(self, state: ChainState) -> Proposal:
        self.halton_index += 1
        u = 1.0 - self.jitter + self.jitter * van_der_corput(self.halton_index)
        s = float(torch.as_tensor(self.step_size).mean())
        self.num_steps = min(max(math.ceil(u * self.trajectory_length / s), 1), self.max_num_steps)
        prop = super().propose(state)
        x = state.position
        self.last_transition = (x, prop.state.position, self._last_momentum, u)
        n = x.shape[0]
        prop.extras["n_steps"] = torch.full((n,), self.num_steps, dtype=torch.long, device=x.device)
        prop.extras["trajectory_length"] = torch.full((n,), self.trajectory_length, dtype=torch.float64,
                                                      device=x.device)
        return prop

    def integrate(self, state: ChainState, p: torch.Tensor, num_steps: int):
        x, u, g, p = super().integrate(state, p, num_steps)
        self._last_momentum = p
        return x, u, g, p


class ChEESAdaptation(KernelWrapper):
    """Warmup-only ChEES adaptation of the trajectory length of a `ChEESHMC` (module docstring); frozen after.

    Parameters
    ----------
    learning_rate
        Adam's step on log T (0.025, as Hoffman et al.).
    beta1, beta2
        Adam's averaging of the gradient and its square (no momentum: 0 and 0.95).
    decay_rate
        The length used is the running average of log T with weights t^-decay_rate.
    max_log_update
        Each Adam update of log T is clipped to +- this (0.35, as TFP and BlackJAX).
    """

    def __init__(self, kernel: TransitionKernel, learning_rate: float = 0.025, beta1: float = 0.0,
                 beta2: float = 0.95, decay_rate: float = 0.5, max_log_update: float = 0.35):
        super().__init__(kernel)
        if not isinstance(kernel.base, ChEESHMC):
            raise TypeError(f"ChEESAdaptation adapts a ChEESHMC kernel, got {type(kernel.base).__name__}")
        self.learning_rate, self.beta1, self.beta2 = learning_rate, beta1, beta2
        self.decay_rate, self.max_log_update = decay_rate, max_log_update
        self.adapting = False

    # the shared step size serves every chain: its dual averaging reads the harmonic mean of the acceptances
    step_size_statistic = "harmonic"

    def start_warmup(self, num_steps: int) -> None:
        self.adapting = True
        self._restart()
        self.kernel.start_warmup(num_steps)

    def _restart(self) -> None:
        """Adam and the running average start afresh from the current T, in the current mass matrix."""
        self._t, self._m, self._v = 0, 0.0, 0.0
        self._log_t = self._log_t_avg = math.log(self.base.trajectory_length)
        self._inv_mass = self.base.inv_mass

    def end_warmup(self) -> None:
        self.adapting = False
        self.kernel.end_warmup()

    def step(self, state) -> Tuple[object, StepInfo]:
        state, info = self.kernel.step(state)
        if self.adapting:
            self._update(info)
        return state, info

    def criterion_gradient(self, info: StepInfo) -> Optional[float]:
        """The acceptance-weighted ChEES gradient with respect to log T over the chains (None: no usable chain)."""
        base = self.base
        x0, x1, p1, u = base.last_transition
        x0, x1, p1 = (t.to(torch.float64) for t in (x0, x1, p1))
        finite = torch.isfinite(x1).flatten(1).all(1) & torch.isfinite(p1).flatten(1).all(1)
        w = torch.where(finite & ~info.diverging, info.acceptance_prob.to(torch.float64).nan_to_num(0.0),
                        torch.zeros((), dtype=torch.float64))
        if float(w.sum()) <= 0:
            return None
        x1 = torch.where(finite.view(-1, *([1] * (x1.dim() - 1))), x1, torch.zeros_like(x1))
        p1 = torch.where(finite.view(-1, *([1] * (p1.dim() - 1))), p1, torch.zeros_like(p1))
        wv = w.view(-1, *([1] * (x1.dim() - 1)))
        d1 = x1 - (wv * x1).sum(0) / w.sum()
        d0 = x0 - x0.mean(0)
        metric = base.metric(x1)
        change = metric.whitened_sq_norm(d1) - metric.whitened_sq_norm(d0)
        g = u * base.trajectory_length * change * (d1 * p1).flatten(1).sum(1)
        return float((w * g).sum() / w.sum())

    def _update(self, info: StepInfo) -> None:
        if self.base.inv_mass is not self._inv_mass:
            # a new mass matrix changes the criterion's scale and units: Adam's second moment, still scaled to the
            # old gradients (1e4 times larger on a badly scaled posterior), would stall it for hundreds of steps;
            # and T, tuned in the old units, is as far off (Adam moves log T ~0.025 a step), so it starts at the
            # whitened scale, 1 (a Gaussian's optimum is T = 2.2467 there)
            self._set_length(1.0)
            self._restart()
        g = self.criterion_gradient(info)
        if g is None or not math.isfinite(g):
            return
        self._t += 1
        t = self._t
        self._m = self.beta1 * self._m + (1 - self.beta1) * g
        self._v = self.beta2 * self._v + (1 - self.beta2) * g * g
        m_hat = self._m / (1 - self.beta1 ** t)
        v_hat = self._v / (1 - self.beta2 ** t)
        step = self.learning_rate * m_hat / (math.sqrt(v_hat) + 1e-8)  # ascent: ChEES is maximized
        self._log_t += max(-self.max_log_update, min(self.max_log_update, step))
        w = t ** -self.decay_rate
        self._log_t_avg = (1 - w) * self._log_t_avg + w * self._log_t
        self._set_length(math.exp(self._log_t_avg))

    def _set_length(self, length: float) -> None:
        """T = `length`, clamped to [s, max_num_steps s] (s the mean step size)."""
        base = self.base
        s = float(torch.as_tensor(base.step_size).mean())
        base.trajectory_length = min(max(length, s), base.max_num_steps * s)


__all__ = ["ChEESHMC", "ChEESAdaptation", "van_der_corput"]

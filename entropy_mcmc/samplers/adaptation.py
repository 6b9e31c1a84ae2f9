"""Step-size and mass-matrix adaptation, wrapped around any calibrated kernel with a step size: during warmup
(dual averaging), or throughout a run whose target moves (Robbins-Monro, an energy model in training).

Step size: dual averaging toward a target acceptance rate (Hoffman & Gelman 2014,
section 3.2, as in Stan and BlackJAX): with statistic h_t = delta - alpha_t,

    H_t = (1 - 1/(t + t0)) H_{t-1} + h_t / (t + t0)
    log s_t = mu - sqrt(t) / gamma * H_t
    log s̄_t = t^-kappa log s_t + (1 - t^-kappa) log s̄_{t-1}

with mu = log(10 s_0). `per_chain=True` keeps one schedule per chain; otherwise
alpha_t is the mean acceptance over chains, or with `statistic="harmonic"` their harmonic
mean (Hoffman, Radul & Sountsov 2021, as TFP's ChEES-HMC reduces it): one chain that
accepts nothing makes it 0, so the shared step size shrinks until every chain moves,
including a chain started far in the tails where only a tiny step is stable. At
`end_warmup` the step size is frozen at s̄.

Mass matrix (HMC, MALA): Stan's windowed scheme. After an initial buffer, positions
are pooled over chains in doubling windows; at each window's end the inverse mass
becomes the regularized (co)variance n/(n+5) S + 1e-3 * 5/(n+5) I (diagonal or dense),
and dual averaging restarts from s̄, the kernel's step size set to it. It restarts at
`start_warmup` too.

`adapt_mass_matrix="auto"` chooses between the two at the end of the first window, once per warmup. Dense
when the last window, whose estimate the sampling keeps, pools at least `AUTO_DRAWS_PER_ENTRY` draws per entry
of the matrix (n >= 10 d (d + 1) / 2: the windows grow with the chains), and the first window's correlation
matrix R = D^-1/2 C D^-1/2 (C the regularized estimate above, D its diagonal) has condition number
lambda_max(R) / lambda_min(R) >= `AUTO_MIN_CONDITION`: that spread is what a diagonal mass matrix leaves, and
it bounds the step size against the longest direction. Diagonal otherwise. `mass_choice` says which and why.

For a target that keeps moving (an energy model in training) `controller="robbins-monro"` replaces
dual averaging, whose weights 1/(t + t0) would freeze the step size: after every `update_every` steps,

    log s_t = log s_{t-1} + r_t (alpha_t - delta),   r_t = max(rate, rate_init / sqrt(1 + t)),

with alpha_t the mean acceptance of those steps; large early, so the step size reaches the target within
a few dozen updates from any start, then the floor `rate` keeps following the model. The step size is
fixed within the `update_every` steps, which are then one homogeneous Metropolis-Hastings chain.

The wrapper acts on the innermost kernel (`kernel.base`), so it stacks with
`StepSizeJitter` in either order.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from .base import KernelWrapper, StepInfo, TransitionKernel


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


class RobbinsMonro:
    """The Robbins-Monro recursion on log step size with a decaying rate floored at `rate` (module docstring)."""

    def __init__(self, initial_step_size: torch.Tensor, target_accept: float, rate_init: float = 1.0,
                 rate: float = 0.05):
        self.target_accept, self.rate_init, self.rate = target_accept, rate_init, rate
        self.reset(initial_step_size)

    def reset(self, step_size: torch.Tensor) -> None:
        self.t = 0
        self.log_s = torch.log(torch.as_tensor(step_size, dtype=torch.float64))

    def update(self, accept_prob: torch.Tensor) -> torch.Tensor:
        rate = max(self.rate, self.rate_init / math.sqrt(1 + self.t))
        self.t += 1
        self.log_s = self.log_s + rate * (accept_prob.to(torch.float64).nan_to_num(0.0) - self.target_accept)
        return torch.exp(self.log_s)

    @property
    def final_step_size(self) -> torch.Tensor:
        return torch.exp(self.log_s)


CONTROLLERS = ("dual-averaging", "robbins-monro")
MASS_MODES = {False: None, None: None, True: "diag", "diag": "diag", "dense": "dense", "auto": "auto"}
# the thresholds of "auto" (module docstring). Its first-window choices, German (256 and 64 chains): dense at
# condition number ~14, 4.5x NUTS's min ESS per gradient; posteriordb (4 chains): kidiq-kidscore_momhsiq 144 and
# earnings-logearn_interaction_z 22, dense, 14x and 8x; sblrc-blr 1.4, diagonal, where dense gives 0.75x
# (BENCHMARKS.md, "Dense mass matrices").
AUTO_DRAWS_PER_ENTRY = 10
AUTO_MIN_CONDITION = 5.0


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


class StepSizeAdaptation(KernelWrapper):
    """Wraps a calibrated kernel with a `step_size`; adapts it (and the mass matrix) during warmup, then freezes it.

    Parameters
    ----------
    kernel
        The kernel to adapt (RWM, MALA, HMC, the learned sampler...), possibly inside other wrappers.
    target_accept
        The acceptance rate to reach (Stan's delta).
    per_chain
        One step size per chain instead of one shared step size.
    adapt_mass_matrix
        False, True or "diag" (a diagonal `inv_mass`), "dense" (a full `[d, d]` one), or
        "auto" (one of the two, chosen at the end of the first window: module docstring); for kernels that
        have an `inv_mass` (HMC, NUTS, MALA). `mass_choice` then says what was adapted and why.
    statistic
        How a shared step size reduces the chains' acceptance probabilities: "mean" or "harmonic"
        (module docstring); kernels that tune over the ensemble declare it as `step_size_statistic`.
    gamma
        Dual-averaging shrinkage; default 0.05 (Stan) for a shared step size and 0.2 per
        chain, where the single-chain acceptance is noisy and the fluctuating iterate would
        otherwise average to a step size that overshoots the target acceptance.
    controller
        "dual-averaging" (warmup, then frozen) or "robbins-monro" (a moving target; no mass
        matrix), with its `rate_init` and `rate` (module docstring).
    update_every
        The step size changes once per this many steps, from their mean acceptance.
    reduce
        Applied to that acceptance before the update (e.g. a mean over the ranks of a process group, so
        that every rank keeps the same step size).
    """

    def __init__(self, kernel: TransitionKernel, target_accept: float = 0.8, per_chain: bool = False,
                 adapt_mass_matrix: Union[bool, str] = False, gamma: Optional[float] = None, t0: float = 10.0,
                 kappa: float = 0.75, statistic: Optional[str] = None, controller: str = "dual-averaging",
                 rate_init: float = 1.0, rate: float = 0.05, update_every: int = 1,
                 reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        super().__init__(kernel)
        base = kernel.base
        name = type(base).__name__
        if getattr(base, "step_size", None) is None:
            raise ValueError(f"{name} has no step_size to adapt")
        if not base.is_calibrated:
            raise ValueError(f"{name} has no accept step: its acceptance is always 1, so dual averaging would grow "
                             "the step size without bound, past the stability limit; give it a fixed step size")
        if not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}")
        mode = MASS_MODES.get(adapt_mass_matrix, "?")
        if mode == "?":
            raise ValueError(f"adapt_mass_matrix must be False, True, 'diag', 'dense' or 'auto', "
                             f"got {adapt_mass_matrix!r}")
        if mode and not hasattr(base, "inv_mass"):
            raise ValueError(f"{name} has no inv_mass to adapt")
        if controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {', '.join(CONTROLLERS)}, got {controller!r}")
        if controller == "robbins-monro" and mode:
            raise ValueError("the Robbins-Monro controller follows a moving target: it adapts no mass matrix")
        if isinstance(update_every, bool) or int(update_every) != update_every or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}")
        if not (rate >= 0 and rate_init >= 0):
            raise ValueError(f"rate and rate_init must be >= 0, got {rate!r} and {rate_init!r}")
        statistic = getattr(kernel, "step_size_statistic", "mean") if statistic is None else statistic
        if statistic not in ("mean", "harmonic"):
            raise ValueError(f"statistic must be 'mean' or 'harmonic', got {statistic!r}")
        self.target_accept = target_accept
        self.per_chain = per_chain
        self.statistic = statistic
        self.adapt_mass_matrix = mode
        self._kind = None if mode == "auto" else mode  # the matrix adapted: "diag", "dense", None (auto: undecided)
        self.mass_choice = mode or ""  # what was adapted; auto: and why
        gamma = (0.2 if per_chain else 0.05) if gamma is None else gamma
        self.controller = controller
        self._controller_args = (dict(gamma=gamma, t0=t0, kappa=kappa) if controller == "dual-averaging"
                                 else dict(rate_init=rate_init, rate=rate))
        self.update_every, self.reduce = int(update_every), reduce
        self._accept_sum, self._accept_n = 0.0, 0
        self.adapting = True
        self._recursion: Union[None, DualAveraging, RobbinsMonro] = None
        self._windows: List[Tuple[int, int]] = []
        self._step = 0
        self._reset_window()

    def start_warmup(self, num_steps: int) -> None:
        self.adapting = True
        self._step = 0
        self._recursion = None  # restarts from the kernel's current step size at the first step
        self._accept_sum, self._accept_n = 0.0, 0
        self._windows = mass_matrix_windows(num_steps) if self.adapt_mass_matrix else []
        if self.adapt_mass_matrix == "auto":
            self._kind = None
            self.mass_choice = "auto: undecided (no window)"
        self._reset_window()
        self.kernel.start_warmup(num_steps)

    def _restart(self, step_size: torch.Tensor) -> None:
        self.base.step_size = step_size
        cls = DualAveraging if self.controller == "dual-averaging" else RobbinsMonro
        self._recursion = cls(step_size, self.target_accept, **self._controller_args)

    def _reset_window(self) -> None:
        self._n, self._sum, self._sumsq = 0, None, None

    def _accumulate(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64).reshape(x.shape[0], -1)
        if self._kind is None and self._n == 0:
            self._check_auto_size(x.shape[0], x.shape[1])
        s = x.sum(0)
        ss = (x * x).sum(0) if self._kind == "diag" else x.T @ x  # dense, or auto still undecided
        self._sum = s if self._sum is None else self._sum + s
        self._sumsq = ss if self._sumsq is None else self._sumsq + ss
        self._n += x.shape[0]

    def step(self, state) -> Tuple[object, StepInfo]:
        state, info = self.kernel.step(state)
        if not self.adapting:
            return state, info
        if self._recursion is None:
            s = torch.as_tensor(self.base.step_size, dtype=torch.float64)
            if self.per_chain and s.dim() == 0:
                s = s.expand(info.acceptance_prob.shape[0]).clone()
            self._restart(s)
        self._step += 1
        alpha = info.acceptance_prob if self.per_chain else self._reduce(info.acceptance_prob)
        self._accept_sum, self._accept_n = self._accept_sum + alpha, self._accept_n + 1
        if self._accept_n == self.update_every:
            alpha = self._accept_sum / self._accept_n
            self._accept_sum, self._accept_n = 0.0, 0
            self.base.step_size = self._recursion.update(alpha if self.reduce is None else self.reduce(alpha))
        if self._windows:
            start, end = self._windows[0]
            if self._step > start:
                self._accumulate(state.position)
            if self._step == end:
                self._finish_window()
        return state, info

    def _reduce(self, accept_prob: torch.Tensor) -> torch.Tensor:
        a = accept_prob.to(torch.float64).nan_to_num(0.0)
        if self.statistic == "mean":
            return a.mean()
        return torch.zeros((), dtype=a.dtype) if bool((a <= 0).any()) else 1.0 / (1.0 / a).mean()

    def _check_auto_size(self, chains: int, d: int) -> None:
        """Auto, at the first window's first draw: diagonal at once if the last window cannot estimate a dense
        matrix."""
        start, end = self._windows[-1]
        n, entries = chains * (end - start), d * (d + 1) // 2
        if n < AUTO_DRAWS_PER_ENTRY * entries:
            self._kind = "diag"
            self.mass_choice = (f"diag (auto: the last window's {n} pooled draws are fewer than "
                                f"{AUTO_DRAWS_PER_ENTRY} per entry of a dense matrix, {entries} entries)")

    def _finish_window(self) -> None:
        n = self._n
        mean = self._sum / n
        if self._kind != "diag":
            cov = (self._sumsq / n - torch.outer(mean, mean)) * n / max(n - 1, 1)
            eye = torch.eye(cov.shape[0], dtype=cov.dtype)
            inv_mass = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * eye
            if self._kind is None:
                inv_mass = self._choose(inv_mass, n)
        else:
            var = (self._sumsq / n - mean * mean).clamp_min(0.0) * n / max(n - 1, 1)
            inv_mass = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        if inv_mass.dim() == 1:
            inv_mass = inv_mass.reshape(self.base.target.event_shape)
        self.base.inv_mass = inv_mass
        self._windows.pop(0)
        self._reset_window()
        self._restart(self._recursion.final_step_size)

    def _choose(self, cov: torch.Tensor, n: int) -> torch.Tensor:
        """Auto, at the end of the first window: `cov` if its correlation matrix's condition number reaches
        AUTO_MIN_CONDITION, else its diagonal."""
        sd = cov.diagonal().sqrt()
        eig = torch.linalg.eigvalsh(cov / torch.outer(sd, sd))
        cond = float(eig[-1] / eig[0])
        dense = cond >= AUTO_MIN_CONDITION
        self._kind = "dense" if dense else "diag"
        self.mass_choice = (f"{self._kind} (auto: the first window's correlation matrix has condition number "
                            f"{cond:.3g} {'>=' if dense else '<'} {AUTO_MIN_CONDITION:g}; {n} pooled draws)")
        return cov if dense else cov.diagonal().clone()

    def state_dict(self) -> Dict[str, Any]:
        """The controller's state (for a trainer's checkpoint); the step size itself lives on the kernel."""
        rec = self._recursion
        return {"controller": self.controller, "state": None if rec is None else
                {k: v for k, v in vars(rec).items() if k not in self._controller_args and k != "target_accept"}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["controller"] != self.controller:
            raise ValueError(f"the saved step-size adaptation is {state['controller']}, this one {self.controller}")
        if state["state"] is None:
            self._recursion = None
            return
        self._restart(self.base.step_size)
        vars(self._recursion).update(state["state"])

    def end_warmup(self) -> None:
        if self.adapting and self._recursion is not None and self._recursion.t > 0:
            self.base.step_size = self._recursion.final_step_size
        self.adapting = False
        self.kernel.end_warmup()

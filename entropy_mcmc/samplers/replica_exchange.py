"""Replica exchange (parallel tempering) around any kernel on real states: mode weights right where the target has
an energy (Swendsen & Wang 1986, Geyer 1991; TFP's `ReplicaExchangeMC` is the model).

R replicas of every chain sample p_b(x) ∝ exp(-b U(x)) at inverse temperatures 1 = b_0 > b_1 > ... > b_{R-1} > 0,
geometric by default (b_r = T_max^(-r/(R-1))). One transition:

1. the inner kernel moves every replica on U_b(x) = b U(x) (`TemperedTarget`): the R x C replicas of C chains are
   one batch of R*C rows, replica-major (rows rC .. rC+C-1 at b_r), so it moves them all at once;
2. adjacent temperatures (r, r+1) propose to swap their states, r even on even transitions and odd on odd ones
   (deterministic even-odd swaps; Okabe et al. 2001, Syed et al. 2021), accepted with probability

       min(1, exp((b_r - b_{r+1}) (U(x_r) - U(x_{r+1})))),

   the Metropolis-Hastings ratio of prod_r p_{b_r}(x_r) under the swap, by the package's one decision
   (`metropolis_accept`).

Both moves leave prod_r p_{b_r} invariant, so the b = 1 replica samples p exactly when the inner kernel does: a hot
replica crosses barriers the cold one cannot and hands the crossing down. A swapped state carries its cached energy
and gradient rescaled by b_new / b_old (both are linear in b), so swaps evaluate nothing.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ..targets.base import Target
from .adaptation import StepSizeAdaptation
from .base import Seed, StepInfo, TransitionKernel, make_generator
from .metropolis import metropolis_accept

# The hottest replica must cross every barrier: on the 2-D mixture of benchmarks/replica_exchange.py (its narrowest
# mode ~115 nats deep) T_max = 10 left a 0.21-0.29 relative error in the mode weights, 30 left 0.05 (BENCHMARKS.md).
DEFAULT_MAX_TEMPERATURE = 30.0


def geometric_ladder(num_replicas: int, max_temperature: float = DEFAULT_MAX_TEMPERATURE) -> torch.Tensor:
    """Inverse temperatures b_r = T_max^(-r/(R-1)), r = 0..R-1 (float64): from 1 down to 1/T_max."""
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 2:
        raise ValueError(f"replica exchange needs an integer number of replicas >= 2, got {num_replicas!r}")
    if isinstance(max_temperature, bool) or not isinstance(max_temperature, (int, float)) \
            or not 1.0 < max_temperature < math.inf:
        raise ValueError(f"max_temperature must be a finite number > 1, got {max_temperature!r}")
    r = torch.arange(num_replicas, dtype=torch.float64)
    return float(max_temperature) ** (-r / (num_replicas - 1))


def check_ladder(inverse_temperatures) -> torch.Tensor:
    """The inverse temperatures as float64 `[R]`, checked: R >= 2, b_0 = 1, strictly decreasing, positive."""
    b = torch.as_tensor(inverse_temperatures, dtype=torch.float64).detach().cpu()
    if b.dim() != 1 or b.numel() < 2:
        raise ValueError(f"replica exchange needs >= 2 inverse temperatures in a 1-D sequence, got shape "
                         f"{list(b.shape)}")
    if not (torch.isfinite(b).all() and (b > 0).all() and b[0] == 1 and (b[1:] < b[:-1]).all()):
        raise ValueError(f"inverse temperatures must start at 1 and decrease strictly, staying positive, got "
                         f"{b.tolist()}")
    return b


class TemperedTarget(Target):
    """U_b(x) = b U(x) over the R*C rows of R replicas of C chains, replica-major: rows rC .. rC+C-1 at b_r.

    `chains` (C) is set by `ReplicaExchange.init`; an evaluation of any other number of rows is refused, since a row's
    temperature is its place in the batch (a kernel that evaluates a subset of its chains cannot run inside).
    """

    def __init__(self, target: Target, inverse_temperatures):
        if not isinstance(target, Target):
            raise TypeError(f"target must be an entropy_mcmc Target, got {type(target).__name__}")
        super().__init__(target.event_shape)
        self.target = target
        self.inverse_temperatures = check_ladder(inverse_temperatures)
        self.name = f"{target.name} (tempered)"
        self.dtypes = target.dtypes
        self.state_space = target.state_space
        self.chains: Optional[int] = None
        self._rows: Dict[Tuple[torch.dtype, torch.device, int], torch.Tensor] = {}

    @property
    def num_replicas(self) -> int:
        return self.inverse_temperatures.numel()

    def row_betas(self, x: torch.Tensor) -> torch.Tensor:
        """b of each row of `x` (`[R*C]`, in its dtype and device)."""
        r, c = self.num_replicas, self.chains
        if c is None or x.shape[0] != r * c:
            raise ValueError(f"{self.name}: expected the {r} x {c} rows of every replica at once, got {x.shape[0]} "
                             "rows; a kernel that evaluates a subset of its chains cannot run inside replica exchange")
        key = (x.dtype, x.device, c)
        b = self._rows.get(key)
        if b is None:
            b = self._rows[key] = self.inverse_temperatures.to(x.dtype).repeat_interleave(c).to(x.device)
        return b

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.row_betas(x) * self.target.energy(x)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        b = self.row_betas(x)
        u, g = self.target.energy_and_grad(x)
        return b * u, b.view(-1, *([1] * (x.dim() - 1))) * g

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return self.row_betas(x).view(-1, *([1] * (x.dim() - 1))) * self.target.grad(x)

    def validate(self, x: torch.Tensor) -> torch.Tensor:
        return self.target.validate(x)


@dataclass
class ReplicaState:
    """The b = 1 replica of every chain (`position` `[chains, *event]`, its energy U `[chains]`: what the runner
    records) and the inner kernel's state of all R*C replica rows; `step` counts transitions (its parity picks the
    swap pairs)."""

    position: torch.Tensor
    energy: torch.Tensor
    replicas: object
    step: int = 0


class ReplicaExchange(TransitionKernel):
    """Replica exchange of the kernel `make_kernel(tempered_target)` on `target` (module docstring).

    Parameters
    ----------
    target
        The `Target` to sample (real states).
    make_kernel
        `TemperedTarget -> TransitionKernel`, the inner kernel built on the target it is given (TFP's
        `make_kernel_fn`), e.g. `lambda t: MALAKernel(t, 0.1)` or `lambda t: build_kernel("hmc", t)`.
    inverse_temperatures
        The ladder `[R]` (1 first, strictly decreasing, positive); or
    num_replicas, max_temperature
        A geometric ladder of R temperatures from 1 to T_max (default 30).
    seed
        Int or `torch.Generator`; the inner kernel draws from this kernel's generator, so one seed fixes a run.

    Notes
    -----
    Step sizes: each temperature has its own (`step_size`, `[R]`), since p_b is 1/sqrt(b) as wide as p; the inner
    kernel holds them per row. A scalar step size s (the inner kernel's at construction, or one set later) means s at
    b = 1 and s / sqrt(b) at b (a Gaussian's scale). `adapt_step_size` adapts them per temperature: one
    `StepSizeAdaptation` over the rows, each temperature's rows driven by their mean acceptance, which keeps every
    chain of a temperature at one step size (a per-chain step size would adapt on one chain's noisy acceptance) and
    reuses the package's adaptation, mass matrix (pooled over the replicas) and jitter. The replicas start at the
    given positions; a new number of chains regroups the step sizes (and restarts an adaptation in progress).

    Statistics (`StepInfo` of the b = 1 replica): the inner kernel's acceptance and extras at b = 1, `accepted` when
    the cold state changed (a move or a swap), `num_grad_evals` R times the inner count, and `swap_accept_r_s` per
    adjacent pair: the swap's acceptance probability, NaN on the transitions that do not propose it.
    Exact (`is_calibrated`) when the inner kernel is; the state space is the target's.
    """

    def __init__(self, target: Target, make_kernel: Callable[[TemperedTarget], TransitionKernel],
                 inverse_temperatures: Optional[Sequence[float]] = None, num_replicas: Optional[int] = None,
                 max_temperature: float = DEFAULT_MAX_TEMPERATURE, seed: Seed = None):
        super().__init__(seed)
        if not isinstance(target, Target):
            raise TypeError(f"target must be an entropy_mcmc Target, got {type(target).__name__}")
        if target.state_space != "real":
            raise ValueError(f"replica exchange tempers real states; target {target.name!r} has "
                             f"{target.state_space} states")
        if (inverse_temperatures is None) == (num_replicas is None):
            raise ValueError("give either inverse_temperatures or num_replicas (with max_temperature)")
        ladder = check_ladder(inverse_temperatures) if num_replicas is None \
            else geometric_ladder(num_replicas, max_temperature)
        self.target = target
        self.tempered = TemperedTarget(target, ladder)
        inner = make_kernel(self.tempered)
        if not isinstance(inner, TransitionKernel):
            raise TypeError(f"make_kernel returned a {type(inner).__name__}, not an entropy_mcmc TransitionKernel")
        if getattr(inner.base, "target", None) is not self.tempered:
            raise ValueError("make_kernel must build its kernel on the tempered target it is given")
        if getattr(inner.base, "compact", False):  # NUTS: evaluate every row, each has its temperature
            inner.base.compact = False
        self.inner = inner
        self.adaptation: Optional[StepSizeAdaptation] = None
        s = getattr(inner.base, "step_size", None)
        if s is not None and torch.as_tensor(s).dim() == 0:
            self.step_size = s

    @property
    def inverse_temperatures(self) -> torch.Tensor:
        return self.tempered.inverse_temperatures

    @property
    def num_replicas(self) -> int:
        return self.tempered.num_replicas

    @property
    def is_calibrated(self) -> bool:
        return self.inner.is_calibrated

    @property
    def needs_grad(self) -> bool:
        return getattr(self.inner.base, "needs_grad", True)

    # -- step sizes -------------------------------------------------------------------------------------------------
    @property
    def step_size(self) -> Optional[torch.Tensor]:
        """One step size per temperature `[R]` (None when the inner kernel has none)."""
        s = getattr(self.inner.base, "step_size", None)
        if s is None:
            return None
        s = torch.as_tensor(s)
        return s.expand(self.num_replicas).clone() if s.dim() == 0 else s.view(self.num_replicas, -1)[:, 0].clone()

    @step_size.setter
    def step_size(self, value) -> None:
        if getattr(self.inner.base, "step_size", None) is None:
            raise ValueError(f"the inner kernel {type(self.inner.base).__name__} has no step size")
        s = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
        if s.dim() == 0:
            s = s / self.inverse_temperatures.sqrt()
        if s.shape != (self.num_replicas,):
            raise ValueError(f"replica exchange takes a scalar step size (at b = 1) or one per temperature "
                             f"[{self.num_replicas}], got shape {list(s.shape)}")
        c = self.tempered.chains
        self.inner.base.step_size = s if c is None else s.repeat_interleave(c)

    def _fit_rows(self, chains: int) -> None:
        """Per-row step sizes (and an adaptation in progress) for `chains` chains."""
        s = getattr(self.inner.base, "step_size", None)
        if s is not None and s.dim() == 1 and s.numel() != self.num_replicas * chains:
            self.inner.base.step_size = self.step_size.repeat_interleave(chains)
        if self.adaptation is not None:
            control = self.adaptation.state_dict()
            if control["state"] is not None and control["state"]["log_s"].numel() != self.num_replicas * chains:
                self.adaptation.load_state_dict({"controller": control["controller"], "state": None})

    def adapt_step_size(self, target_accept: float = 0.8, reduce: Optional[Callable] = None,
                        **options) -> StepSizeAdaptation:
        """Wrap the inner kernel in `StepSizeAdaptation(per_chain=True)` whose acceptance is averaged over the chains
        of each temperature (then `reduce`d, e.g. over ranks): one step size per temperature. `options` go to
        `StepSizeAdaptation` (`adapt_mass_matrix`, `controller`, ...); `gamma` is 0.05, Stan's for a shared step
        size. Returns the adaptation (for its `state_dict`)."""
        if self.adaptation is not None:
            raise ValueError("this replica exchange already adapts its step sizes")
        r = self.num_replicas

        def per_temperature(a: torch.Tensor) -> torch.Tensor:
            a = a.view(r, -1).mean(1, keepdim=True).expand(r, a.numel() // r).reshape(-1)
            a = a if reduce is None else reduce(a)
            return a.to(self.inner.base.step_size.device)  # the step sizes' and their recursion's (the CPU)

        options.setdefault("gamma", 0.05)
        self.adaptation = StepSizeAdaptation(self.inner, target_accept, per_chain=True, reduce=per_temperature,
                                             **options)
        self.inner = self.adaptation
        return self.adaptation

    # -- kernel interface -------------------------------------------------------------------------------------------
    def reseed(self, seed: Seed, device=None) -> None:
        super().reseed(seed, device)
        self.inner.reseed(self.generator, device)

    def _ensure_generator(self, like: torch.Tensor) -> None:
        if self.generator is None or self.generator.device != like.device:
            self.reseed(self._seed if self.generator is None else make_generator(self._seed, like.device), like.device)
        elif self.inner.base.generator is not self.generator:
            self.inner.reseed(self.generator, like.device)

    def init(self, position: torch.Tensor) -> ReplicaState:
        """Every replica of chain c starts at `position[c]`."""
        self.target.validate(position)
        self._ensure_generator(position)
        chains = position.shape[0]
        self.tempered.chains = chains
        self._fit_rows(chains)
        rows = position.detach().repeat(self.num_replicas, *([1] * (position.dim() - 1)))
        state = self.inner.init(rows)
        if getattr(state, "energy", None) is None or getattr(state, "position", None) is None:
            raise TypeError(f"replica exchange swaps states by their cached energy; the inner kernel's "
                            f"{type(state).__name__} has no position and energy")
        return self._cold(state, 0)

    def _cold(self, replicas, step: int) -> ReplicaState:
        c = self.tempered.chains
        return ReplicaState(replicas.position[:c].clone(), replicas.energy[:c].clone(), replicas, step)

    def refresh(self, state: ReplicaState) -> ReplicaState:
        return self._cold(self.inner.refresh(state.replicas), state.step)

    def start_warmup(self, num_steps: int) -> None:
        self.inner.start_warmup(num_steps)

    def end_warmup(self) -> None:
        self.inner.end_warmup()

    def swap_log_ratio(self, delta_beta: torch.Tensor, u_cold: torch.Tensor, u_hot: torch.Tensor) -> torch.Tensor:
        """log of the swap's MH ratio, (b_r - b_{r+1}) (U(x_r) - U(x_{r+1})), per pair and chain (tests replace it)."""
        return delta_beta * (u_cold - u_hot)

    def _swap(self, state, parity: int):
        """The state after the even (`parity` 0) or odd swaps, and per pair `[P, C]` their acceptance probability
        and decision (P = 0 pairs when there is none of that parity)."""
        r, c = self.num_replicas, self.tempered.chains
        x = state.position
        b = self.tempered.row_betas(x)
        u = (state.energy / b).view(r, c)  # U at b = 1
        ladder = self.inverse_temperatures.to(x.dtype).to(x.device)
        lo, hi = slice(parity, r - 1, 2), slice(parity + 1, r, 2)
        log_ratio = self.swap_log_ratio((ladder[lo] - ladder[hi])[:, None], u[lo], u[hi])
        if log_ratio.numel() == 0:
            return state, log_ratio, log_ratio.bool()
        prob, accepted = metropolis_accept(log_ratio, self.rand(log_ratio.shape, log_ratio))
        idx = torch.arange(r * c, device=x.device).view(r, c)
        perm = idx.clone()
        perm[lo] = torch.where(accepted, idx[hi], idx[lo])
        perm[hi] = torch.where(accepted, idx[lo], idx[hi])
        perm = perm.flatten()
        values = {}
        for f in dataclasses.fields(state):
            v = getattr(state, f.name)
            if not isinstance(v, torch.Tensor):
                continue
            if f.name in ("energy", "grad"):  # b U and b dU travel as U and dU, then take their new row's b
                scale = b.view(-1, *([1] * (v.dim() - 1)))
                values[f.name] = (v / scale)[perm] * scale
            else:
                values[f.name] = v[perm]
        return dataclasses.replace(state, **values), prob, accepted

    def step(self, state: ReplicaState) -> Tuple[ReplicaState, StepInfo]:
        c = state.position.shape[0]
        if self.generator is None:
            self._ensure_generator(state.position)
        replicas, info = self.inner.step(state.replicas)
        parity = state.step % 2
        replicas, prob, swapped = self._swap(replicas, parity)
        accepted = info.accepted[:c].clone()
        if parity == 0:
            accepted |= swapped[0]
        extras = {name: v[:c] for name, v in info.extras.items()}
        nan = torch.full((c,), float("nan"), dtype=state.energy.dtype, device=state.energy.device)
        for r in range(self.num_replicas - 1):
            extras[f"swap_accept_{r}_{r + 1}"] = prob[(r - parity) // 2].to(nan.dtype) if r % 2 == parity else nan
        s = info.step_size
        if isinstance(s, torch.Tensor) and s.dim() == 1:
            s = s[:c]
        return self._cold(replicas, state.step + 1), StepInfo(
            info.acceptance_prob[:c], accepted, info.diverging[:c], self.num_replicas * info.num_grad_evals, extras, s)


def build_replica_exchange(build_kernel: Callable[..., TransitionKernel], name, spec, target, replicas: int,
                           max_temperature: Optional[float] = None, *, num_warmup: int = 0,
                           target_accept: Optional[float] = None, step_size=None, adapt_mass=None, jitter=None,
                           per_chain: bool = False, **options) -> ReplicaExchange:
    """`build_kernel(name, target, replicas=R, ...)` (the registry passes its `build_kernel`): the registry kernel
    `name` (its `spec`) as the inner kernel of a replica exchange on a geometric ladder of R temperatures up to
    `max_temperature`, its step sizes adapted per temperature during warmup as the spec says. The inner kernel must
    move real states and run at a fixed temperature: neither a trained kernel (trained for b = 1) nor one that
    anneals its own temperature."""
    caps = spec.capabilities
    what = name if isinstance(name, str) else "this kernel"
    if caps.state_space != "real":
        raise ValueError(f"replica exchange tempers real states; kernel {what!r} moves {caps.state_space} states")
    if caps.trainable or caps.schedule_option:
        why = "was trained for b = 1" if caps.trainable else f"anneals its own temperature ({caps.schedule_option})"
        raise ValueError(f"kernel {what!r} cannot run inside replica exchange: it {why}")
    if per_chain:
        raise ValueError("with replicas the step size adapts per temperature; per-chain adaptation does not apply")
    kernel = ReplicaExchange(
        target, lambda t: build_kernel(spec, t, step_size=step_size, adapt_mass=adapt_mass, jitter=jitter, **options),
        num_replicas=replicas, max_temperature=DEFAULT_MAX_TEMPERATURE if max_temperature is None else max_temperature)
    if num_warmup > 0 and spec.adapts_step_size and kernel.step_size is not None and kernel.is_calibrated:
        accept = spec.target_accept if target_accept is None else target_accept
        mass = spec.adapts_mass if adapt_mass is None else adapt_mass
        kernel.adapt_step_size(0.8 if accept is None else accept, adapt_mass_matrix=mass or False)
    return kernel


__all__ = ["ReplicaExchange", "ReplicaState", "TemperedTarget", "geometric_ladder", "check_ladder",
           "build_replica_exchange", "DEFAULT_MAX_TEMPERATURE"]

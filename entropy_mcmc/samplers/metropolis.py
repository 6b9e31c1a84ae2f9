"""The one Metropolis-Hastings path that every proposal kernel goes through (thesis eq. in section 1.3).

A subclass implements `propose(state) -> Proposal`; `step` accepts with
probability A = min(1, p(x') q(x|x') / (p(x) q(x'|x))), computed in log space as
log A = U(x) - U(x') + log_correction. HMC passes the kinetic energy change as
its correction. A non-finite log ratio or a non-finite candidate is a rejection
flagged as divergent, never an exception.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch

from ..targets.base import Target
from .base import ChainState, Seed, StepInfo, TransitionKernel
from .metric import Metric, check_inv_mass


@dataclass
class Proposal:
    """A candidate state (energy, and gradient if the kernel needs it, evaluated) and its MH correction."""

    state: ChainState
    log_correction: torch.Tensor
    num_grad_evals: int
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)


def select_chains(mask: torch.Tensor, new, old):
    """Per chain, every field of `new` where `mask` is true and of `old` elsewhere.

    Works on any dataclass state: tensor fields are picked per chain (leading dimension), a field
    that is None on either side becomes None, and other fields (a step index, a name) come from `new`.
    """

    def pick(a, b):
        if a is None or b is None:
            return None
        if not isinstance(a, torch.Tensor):
            return a
        m = mask.view(-1, *([1] * (a.dim() - 1)))
        return torch.where(m, a, b)

    if type(new) is not type(old):
        raise TypeError(f"cannot select between states of types {type(new).__name__} and {type(old).__name__}")
    values = {f.name: pick(getattr(new, f.name), getattr(old, f.name)) for f in dataclasses.fields(new)}
    return dataclasses.replace(new, **values)


def metropolis_accept(log_ratio: torch.Tensor, u: torch.Tensor,
                      finite: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The Metropolis-Hastings decision every kernel and trainer takes: from log A per chain (and where the
    candidate is `finite`; a non-finite log A or candidate is rejected) and uniforms u, (A = min(1, exp log A),
    accepted = u < A)."""
    ok = torch.isfinite(log_ratio) if finite is None else finite & torch.isfinite(log_ratio)
    log_ratio = torch.where(ok, log_ratio, torch.full_like(log_ratio, -float("inf")))
    accept_prob = torch.exp(torch.clamp(log_ratio, max=0.0))
    return accept_prob, u < accept_prob


def broadcast_step_size(step_size: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar or per-chain `[chains]` step size shaped to multiply `x` elementwise."""
    s = torch.as_tensor(step_size).to(dtype=x.dtype, device=x.device)
    if s.dim() == 0:
        return s
    if s.shape != x.shape[:1]:
        raise ValueError(f"per-chain step size must have shape [{x.shape[0]}], got {list(s.shape)}")
    return s.view(-1, *([1] * (x.dim() - 1)))


class MetropolisHastingsKernel(TransitionKernel):
    """Base of RWM, MALA, HMC and the learned sampler: a proposal plus the shared MH decision.

    Parameters
    ----------
    target
        The `Target` to sample.
    step_size
        A float, or a `[chains]` tensor of per-chain step sizes.
    seed
        Int or `torch.Generator` for reproducible draws.
    divergence_threshold
        An energy error -log A above this counts as a divergence.
    """

    needs_grad: bool = True

    def __init__(self, target: Target, step_size=0.1, seed: Seed = None, divergence_threshold: float = 1000.0):
        super().__init__(seed)
        if not isinstance(target, Target):
            raise TypeError(f"target must be an entropy_mcmc Target, got {type(target).__name__}")
        self.target = target
        self.step_size = step_size
        self.divergence_threshold = divergence_threshold

    @property
    def step_size(self) -> torch.Tensor:
        return self._step_size

    @step_size.setter
    def step_size(self, value) -> None:
        s = torch.as_tensor(value, dtype=torch.float64) if not isinstance(value, torch.Tensor) else value.detach()
        if s.dim() > 1 or not torch.all(torch.isfinite(s) & (s > 0)):
            raise ValueError(f"step_size must be a positive finite scalar or a [chains] tensor, got {value!r}")
        self._step_size = s

    def evaluate(self, position: torch.Tensor) -> ChainState:
        """A state at `position` with the energy (and gradient when `needs_grad`) evaluated."""
        if self.needs_grad:
            u, g = self.target.energy_and_grad(position)
            return ChainState(position, u, g)
        with torch.no_grad():
            return ChainState(position, self.target.energy(position))

    def init(self, position: torch.Tensor) -> ChainState:
        self.target.validate(position)
        if not torch.isfinite(position).all():
            raise ValueError("initial position has non-finite entries")
        self._ensure_generator(position)
        state = self.evaluate(position.detach())
        bad = ~torch.isfinite(state.energy)
        if bad.any():
            raise ValueError(f"initial energy is not finite for chains {bad.nonzero().flatten().tolist()[:10]}")
        return state

    def refresh(self, state: ChainState) -> ChainState:
        """The energy (and gradient) re-evaluated at the same positions."""
        fresh = self.evaluate(state.position)
        return dataclasses.replace(state, energy=fresh.energy, grad=fresh.grad)

    def propose(self, state: ChainState) -> Proposal:
        raise NotImplementedError

    def step(self, state: ChainState) -> Tuple[ChainState, StepInfo]:
        prop = self.propose(state)
        log_ratio = state.energy - prop.state.energy + prop.log_correction
        new_state, accept_prob, accepted, diverging = self.decide(state, prop.state, log_ratio,
                                                                  self.rand(log_ratio.shape, log_ratio))
        info = StepInfo(accept_prob, accepted, diverging, prop.num_grad_evals, prop.extras, self.step_size)
        return new_state, info

    def decide(self, state: ChainState, cand: ChainState, log_ratio: torch.Tensor, u: torch.Tensor):
        """The MH decision from log A and uniforms u per chain: (the state each chain moves to, A, accepted,
        diverging); a non-finite log A or candidate is a rejection flagged as divergent. Pure tensor code."""
        finite = torch.isfinite(log_ratio) & torch.isfinite(cand.position).flatten(1).all(1)
        if cand.grad is not None:
            finite &= torch.isfinite(cand.grad).flatten(1).all(1)
        accept_prob, accepted = metropolis_accept(log_ratio, u, finite)
        diverging = ~finite | (-log_ratio > self.divergence_threshold)
        return select_chains(accepted, cand, state), accept_prob, accepted, diverging


class PreconditionedKernel(MetropolisHastingsKernel):
    """An MH kernel with a mass matrix M (HMC) or preconditioner (MALA), given by `inv_mass` = M^-1:
    None (identity), a tensor of the event shape (diagonal), or `[d, d]` (dense).

    A kernel whose own class defines `transition` (HMC, MALA) can run fused: with `fused` set to that function
    or its `torch.compile`d form (`samplers.compiled`), `step` draws the random numbers from the generator, in
    the order `propose` and `step` draw them, and hands them to it.
    """

    fused = None
    grads_per_transition = 1

    def __init__(self, target: Target, step_size=0.1, inv_mass=None, seed: Seed = None,
                 divergence_threshold: float = 1000.0):
        super().__init__(target, step_size, seed, divergence_threshold)
        self.inv_mass = inv_mass

    @property
    def inv_mass(self) -> Optional[torch.Tensor]:
        return self._inv_mass

    @inv_mass.setter
    def inv_mass(self, value) -> None:
        self._inv_mass = check_inv_mass(value, self.target.event_shape)
        self._metric: Optional[Metric] = None

    def metric(self, like: torch.Tensor) -> Metric:
        """The mass matrix in the dtype and device of `like`, built once per `inv_mass`."""
        m = self._metric
        if m is None or m.inv_mass.dtype != like.dtype or m.inv_mass.device != like.device:
            m = self._metric = Metric(self._inv_mass, like)
        return m

    @property
    def can_fuse(self) -> bool:
        """Whether `transition` is this class's own (a subclass that changes `propose` must define it again)."""
        return "transition" in type(self).__dict__

    def transition(self, x, energy, grad, noise, u, step_size, metric) -> tuple:
        """One transition as a pure function of tensors, from the proposal's standard normal `noise` and the MH
        uniforms `u` (`step_size` shaped as `broadcast_step_size` gives it): (x', U(x'), dU(x'), A, accepted,
        diverging, extras), the same as `step`."""
        raise NotImplementedError

    def finish(self, state: ChainState, prop: Proposal, u: torch.Tensor) -> tuple:
        """`transition`'s result from a proposal and the uniforms."""
        log_ratio = state.energy - prop.state.energy + prop.log_correction
        new, accept_prob, accepted, diverging = self.decide(state, prop.state, log_ratio, u)
        return new.position, new.energy, new.grad, accept_prob, accepted, diverging, prop.extras

    def step(self, state: ChainState) -> Tuple[ChainState, StepInfo]:
        if self.fused is None:
            return super().step(state)
        x = state.position
        noise, u = self.randn_like(x), self.rand(x.shape[:1], state.energy)
        # one step size per chain whether adaptation or jitter set it: one shape, so no recompilation
        s = broadcast_step_size(self.step_size.expand(x.shape[:1]).contiguous(), x)
        x, energy, grad, accept_prob, accepted, diverging, extras = self.fused(
            x, state.energy, state.grad, noise, u, s, self.metric(x))
        info = StepInfo(accept_prob, accepted, diverging, self.grads_per_transition, extras, self.step_size)
        return ChainState(x, energy, grad), info


def gaussian_log_density(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(residual; 0, scale^2 I) summed over event dims, up to the constant -d/2 log 2pi."""
    d = residual[0].numel()
    return -0.5 * (residual / scale).pow(2).flatten(1).sum(1) - d * torch.log(scale).flatten()


def sum_event(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


__all__ = ["MetropolisHastingsKernel", "PreconditionedKernel", "Proposal", "select_chains", "metropolis_accept",
           "broadcast_step_size", "gaussian_log_density", "sum_event"]

"""The interface every kernel shares: `init(position) -> state`, `step(state) -> (state, info)`.

Positions are tensors `[chains, *event_shape]`. Nothing here assumes a real
position, a gradient or an accept step: a Gibbs or an amortized kernel fills
`StepInfo` with all-accepted masks and zero gradient evaluations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import torch

Seed = Union[int, torch.Generator, None]


@dataclass
class ChainState:
    """Position of every chain, with the energy U = -log p and its gradient cached when known."""

    position: torch.Tensor
    energy: Optional[torch.Tensor] = None
    grad: Optional[torch.Tensor] = None

    def replace(self, **changes) -> "ChainState":
        return dataclasses.replace(self, **changes)


@dataclass
class StepInfo:
    """Per-chain diagnostics of one transition (all tensors have shape `[chains]`)."""

    acceptance_prob: torch.Tensor
    accepted: torch.Tensor
    diverging: torch.Tensor
    num_grad_evals: int = 0
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def always_accepted(cls, position: torch.Tensor, num_grad_evals: int = 0, **extras) -> "StepInfo":
        """Info for a kernel without an MH step (Gibbs, unadjusted Langevin, amortized draws)."""
        n = position.shape[0]
        dev = position.device
        return cls(torch.ones(n, device=dev), torch.ones(n, dtype=torch.bool, device=dev),
                   torch.zeros(n, dtype=torch.bool, device=dev), num_grad_evals, dict(extras))


def make_generator(seed: Seed, device) -> torch.Generator:
    """A generator on `device`: a given generator is used as is, an int seeds a new one."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


class TransitionKernel:
    """Base of all kernels. Randomness comes from `self.generator`, set by `init` or `reseed`.

    `is_calibrated` says whether the kernel alone leaves the target invariant
    (False for unadjusted Langevin). `start_warmup`/`end_warmup` are hooks the
    runner calls around warmup; adaptation wrappers use them, plain kernels ignore them.
    """

    is_calibrated: bool = True

    def __init__(self, seed: Seed = None):
        self._seed = seed
        self.generator: Optional[torch.Generator] = None

    def reseed(self, seed: Seed, device=None) -> None:
        self._seed = seed
        self.generator = make_generator(seed, device if device is not None else "cpu")

    def _ensure_generator(self, position: torch.Tensor) -> None:
        if self.generator is None or self.generator.device != position.device:
            self.generator = make_generator(self._seed, position.device)

    def init(self, position: torch.Tensor) -> ChainState:
        raise NotImplementedError

    def step(self, state) -> Tuple[object, StepInfo]:
        raise NotImplementedError

    def start_warmup(self, num_steps: int) -> None:
        pass

    def end_warmup(self) -> None:
        pass

    @property
    def step_size_value(self) -> Optional[torch.Tensor]:
        """The current step size (scalar or `[chains]`) where the kernel has one."""
        s = getattr(self, "step_size", None)
        return None if s is None else torch.as_tensor(s)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)

    def rand(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, dtype=like.dtype, device=like.device)

"""The interface every kernel shares: `init(position) -> state`, `step(state) -> (state, info)`.

A state is any dataclass whose tensor fields have the chain as leading dimension;
`ChainState(position, energy, grad)` is the one the gradient kernels use, and a
kernel with other needs (Gibbs over complex units, an annealing step index, integer
cluster draws) declares its own. `record(state)` says what the runner keeps per draw.
Nothing here assumes a real position, a gradient or an accept step: a Gibbs or an
amortized kernel fills `StepInfo` with all-accepted masks and zero gradient evaluations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import torch

Seed = Union[int, torch.Generator, None]
Record = Union[torch.Tensor, Dict[str, torch.Tensor]]


@dataclass
class ChainState:
    """Position of every chain, with the energy U = -log p and its gradient cached when known."""

    position: torch.Tensor
    energy: Optional[torch.Tensor] = None
    grad: Optional[torch.Tensor] = None

    def replace(self, **changes) -> "ChainState":
        return dataclasses.replace(self, **changes)


def state_tensors(state) -> List[torch.Tensor]:
    """The tensor fields of a state (a dataclass) or the tensor itself, in field order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if not dataclasses.is_dataclass(state):
        raise TypeError(f"a chain state must be a dataclass of tensors, got {type(state).__name__}")
    return [v for v in (getattr(state, f.name) for f in dataclasses.fields(state)) if isinstance(v, torch.Tensor)]


def num_chains(state) -> int:
    """The number of chains of a state: the leading dimension of its first tensor field."""
    tensors = state_tensors(state)
    if not tensors:
        raise TypeError(f"{type(state).__name__} has no tensor field to read the number of chains from")
    return tensors[0].shape[0]


@dataclass
class StepInfo:
    """Per-chain diagnostics of one transition (all tensors have shape `[chains]`).

    `step_size` is the step size the transition used (scalar or `[chains]`), where the kernel has one.
    """

    acceptance_prob: torch.Tensor
    accepted: torch.Tensor
    diverging: torch.Tensor
    num_grad_evals: int = 0
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)
    step_size: Optional[torch.Tensor] = None

    @classmethod
    def always_accepted(cls, like: torch.Tensor, num_grad_evals: int = 0, **extras) -> "StepInfo":
        """Info for a kernel without an MH step (Gibbs, unadjusted Langevin, amortized draws);
        `like` is any tensor whose leading dimension is the chains (a floating or complex one sets the dtype)."""
        n = like.shape[0]
        dev = like.device
        dtype = like.real.dtype if like.is_floating_point() or like.is_complex() else None
        return cls(torch.ones(n, dtype=dtype, device=dev), torch.ones(n, dtype=torch.bool, device=dev),
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


def spawn_seeds(seed: int, n: int) -> List[int]:
    """`n` independent 63-bit seeds derived from one (NumPy's SeedSequence), e.g. for init and kernel."""
    import numpy as np

    return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(n)]


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

    def _ensure_generator(self, like: torch.Tensor) -> None:
        if self.generator is None or self.generator.device != like.device:
            self.generator = make_generator(self._seed, like.device)

    @property
    def base(self) -> "TransitionKernel":
        """The innermost kernel, the one that transitions (a plain kernel is its own base)."""
        return self

    def init(self, position: torch.Tensor):
        raise NotImplementedError

    def step(self, state) -> Tuple[object, StepInfo]:
        raise NotImplementedError

    def record(self, state) -> Record:
        """What the runner keeps of a state per draw: a tensor `[chains, ...]` (stored as the variable
        the caller names, "x" by default) or a dict of named tensors (one ArviZ variable each)."""
        return state.position

    def refresh(self, state):
        """The state with its cached quantities re-evaluated, after the target changed under the kernel
        (annealing, an energy model whose weights moved). Kernels that cache nothing return it as is."""
        return state

    def start_warmup(self, num_steps: int) -> None:
        pass

    def end_warmup(self) -> None:
        pass

    @property
    def step_size_value(self) -> Optional[torch.Tensor]:
        """The current step size (scalar or `[chains]`) where the kernel has one."""
        s = getattr(self.base, "step_size", None)
        return None if s is None else torch.as_tensor(s)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)

    def rand(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, dtype=like.dtype, device=like.device)


class KernelWrapper(TransitionKernel):
    """A kernel around another (adaptation, jitter): everything it does not change is the inner kernel's.

    Wrappers keep no step size, mass matrix or generator of their own: they act on `self.base`,
    the innermost kernel, so they stack in any order.
    """

    def __init__(self, kernel: TransitionKernel):
        if not isinstance(kernel, TransitionKernel):
            raise TypeError(f"expected an entropy_mcmc TransitionKernel to wrap, got {type(kernel).__name__}")
        super().__init__()
        self.kernel = kernel

    def __getattr__(self, name):
        if name == "kernel":
            raise AttributeError(name)
        return getattr(self.kernel, name)

    @property
    def base(self) -> TransitionKernel:
        return self.kernel.base

    @property
    def generator(self):
        return self.base.generator

    @generator.setter
    def generator(self, value) -> None:
        if value is not None:
            raise AttributeError("a wrapper draws from its inner kernel's generator")

    @property
    def is_calibrated(self) -> bool:
        return self.kernel.is_calibrated

    def reseed(self, seed: Seed, device=None) -> None:
        self.kernel.reseed(seed, device)

    def init(self, position):
        return self.kernel.init(position)

    def step(self, state):
        return self.kernel.step(state)

    def record(self, state) -> Record:
        return self.kernel.record(state)

    def refresh(self, state):
        return self.kernel.refresh(state)

    def start_warmup(self, num_steps: int) -> None:
        self.kernel.start_warmup(num_steps)

    def end_warmup(self) -> None:
        self.kernel.end_warmup()


def unwrap(kernel: TransitionKernel) -> List[TransitionKernel]:
    """The stack of a kernel from the outermost wrapper to the base kernel."""
    stack = [kernel]
    while isinstance(stack[-1], KernelWrapper):
        stack.append(stack[-1].kernel)
    return stack


def find_kernel(kernel: TransitionKernel, kind: type) -> Optional[TransitionKernel]:
    """The first kernel of type `kind` in a stack, through wrappers and the `parts` of composite kernels
    (the `LearnedSampler` inside `build_kernel("learned", ...)`); None if there is none."""
    for k in unwrap(kernel):
        if isinstance(k, kind):
            return k
    for part in getattr(unwrap(kernel)[-1], "parts", ()):
        found = find_kernel(part, kind)
        if found is not None:
            return found
    return None


def kernel_name(kernel: TransitionKernel) -> str:
    """`StepSizeJitter(StepSizeAdaptation(HMC))` for a stack; a kernel made of others (`parts`: a mixture, a
    warmup handoff) lists them, `MixtureKernel(MALA, LearnedSampler)`."""
    stack = unwrap(kernel)
    names = [type(k).__name__ for k in stack]
    parts = getattr(stack[-1], "parts", None)
    if parts:
        names[-1] += "(" + ", ".join(kernel_name(p) for p in parts) + ")"
    return "(".join(names) + ")" * (len(names) - 1)

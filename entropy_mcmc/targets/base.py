"""The `Target` protocol: an energy U(x) = -log p(x) + const over a batch of chains."""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import torch


def energy_and_grad(energy: Callable[[torch.Tensor], torch.Tensor],
                    x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """`energy(x)` (`[chains]`) and its gradient by autograd, for any function of `[chains, ...]` positions."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = energy(x)
        (g,) = torch.autograd.grad(u.sum(), x)
    return u.detach(), g


class Target:
    """An unnormalized density p(x) ∝ exp(-U(x)) on positions of shape `[chains, *event_shape]`.

    Subclasses implement `energy`; `energy_and_grad` uses autograd unless a
    subclass supplies an analytic gradient. `mean` and `std`, when known, are
    tensors of shape `event_shape` used by tests and benchmarks.
    """

    name: str = "target"
    dtypes: Tuple[torch.dtype, ...] = (torch.float32, torch.float64)  # what `validate` accepts
    state_space: str = "real"  # what a kernel must move on it (`samplers.Capabilities.state_space`)

    def __init__(self, event_shape: Sequence[int], mean: Optional[torch.Tensor] = None,
                 std: Optional[torch.Tensor] = None):
        self.event_shape = torch.Size(event_shape)
        self.mean = mean
        self.std = std

    @property
    def dim(self) -> int:
        return math.prod(self.event_shape)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """U(x) of shape `[chains]` and dU/dx of the shape of x, by autograd."""
        return energy_and_grad(self.energy, x)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """dU/dx alone; targets override it where skipping the energy is cheaper (HMC's inner leapfrog steps)."""
        return self.energy_and_grad(x)[1]

    def validate(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a `TypeError` or `ValueError` naming the expected layout unless x is `[chains, *event_shape]`
        of one of the target's `dtypes`."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self.name}: expected a torch.Tensor of shape [chains, {_fmt(self.event_shape)}], "
                            f"got {type(x).__name__}")
        if x.dtype not in self.dtypes:
            names = " or ".join(str(d).replace("torch.", "") for d in self.dtypes)
            raise TypeError(f"{self.name}: expected a {names} tensor, got dtype {x.dtype}")
        if x.dim() != 1 + len(self.event_shape) or x.shape[1:] != self.event_shape:
            raise ValueError(f"{self.name}: expected shape [chains, {_fmt(self.event_shape)}], got {list(x.shape)}")
        return x

    def initial_center(self) -> Optional[torch.Tensor]:
        """Where default starts are centred (float64, event shape): None means the origin. Targets whose
        posterior can sit far from 0 in posterior sds override it (logistic regression: its mode)."""
        return None

    def initial_positions(self, chains: int, seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu",
                          scale: float = 0.1) -> torch.Tensor:
        """`[chains, *event]` draws of N(c, scale^2 I) around `initial_center()` c (the origin by default),
        made on the CPU so every device gets the same start."""
        gen = torch.Generator().manual_seed(int(seed))
        x = scale * torch.randn((chains,) + tuple(self.event_shape), generator=gen, dtype=torch.float64)
        center = self.initial_center()
        if center is not None:
            x = x + center
        return x.to(dtype=dtype, device=device)

    @staticmethod
    def from_log_prob(log_prob: Callable[[torch.Tensor], torch.Tensor], event_shape: Sequence[int],
                      name: str = "log_prob") -> "LogDensity":
        """A target from a plain function: `log_prob(x)` takes `[chains, *event_shape]` and returns `[chains]`
        (log p up to a constant); gradients come from autograd."""
        return LogDensity(log_prob, event_shape, name)

    def sample(self, num: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """Exact samples, where the target has a sampler of its own."""
        raise NotImplementedError(f"{self.name} has no exact sampler")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, event_shape={tuple(self.event_shape)})"


class LogDensity(Target):
    """A `Target` whose energy is minus a user's vectorized log density (see `Target.from_log_prob`)."""

    def __init__(self, log_prob: Callable[[torch.Tensor], torch.Tensor], event_shape: Sequence[int],
                 name: str = "log_prob"):
        if not callable(log_prob):
            raise TypeError(f"log_prob must be a callable, got {type(log_prob).__name__}")
        if isinstance(event_shape, int):
            event_shape = (event_shape,)
        super().__init__(event_shape)
        self.log_prob = log_prob
        self.name = name

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        lp = self.log_prob(x)
        if not isinstance(lp, torch.Tensor) or lp.shape != x.shape[:1]:
            shape = list(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise ValueError(f"{self.name}: log_prob must map positions [chains, {_fmt(self.event_shape)}] to a "
                             f"tensor [chains] = [{x.shape[0]}], got {shape}; sum over the event dimensions")
        return -lp


def _fmt(shape) -> str:
    return ", ".join(str(s) for s in shape)


class CastCache:
    """Holds a target's constant tensors and hands them out in the dtype and device of a query."""

    def __init__(self, **tensors: torch.Tensor):
        self._base = tensors
        self._cache = {}

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.dtype, like.device)
        t = self._cache.get(key)
        if t is None:
            t = self._base[name].to(dtype=like.dtype, device=like.device)
            self._cache[key] = t
        return t

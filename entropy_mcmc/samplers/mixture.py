"""A mixture of two kernels: at each step, each chain takes one step of kernel A with probability p, else of B.

With K_A and K_B both leaving p(x) invariant, the mixture K = p K_A + (1 - p) K_B does too,
provided the choice does not depend on the state (thesis section 4.2: invariance,
p(x') = ∫ K(x'|x) p(x) dx, is linear in K). A choice that looks at the state breaks this,
which is what the broken variant of the tests does. The learned sampler mixes in a small
share of adapted MALA this way, so that a chain where the flow proposes nothing acceptable
still moves (`build_kernel("learned", ...)`).

Each part steps only the chains that chose it (their rows of every state field), so a share
p of MALA costs p MALA steps per chain on average, not one.
"""
from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import torch

from .base import Seed, StepInfo, TransitionKernel, make_generator, num_chains, state_tensors, unwrap


def _fields(state) -> List[str]:
    return [f.name for f in dataclasses.fields(state)]


def _missing(state) -> set:
    """The dataclass fields of a state that are None (a cache the kernel that made it does not keep)."""
    return {name for name in _fields(state) if getattr(state, name) is None}


def take_chains(state, index: torch.Tensor):
    """The rows `index` of every tensor field of `state` (other fields as they are)."""
    return dataclasses.replace(state, **{name: getattr(state, name)[index] for name in _fields(state)
                                         if isinstance(getattr(state, name), torch.Tensor)})


def merge_chains(pieces, n: int):
    """One state of `n` chains from `(index, state)` pieces that cover every chain once.

    A field that any piece lacks (None) is None in the result: the cache is refreshed by the part that needs it.
    """
    first = pieces[0][1]
    values = {}
    for name in _fields(first):
        parts = [(idx, getattr(s, name)) for idx, s in pieces]
        if any(v is None for _, v in parts):
            values[name] = None
            continue
        if not isinstance(parts[0][1], torch.Tensor):
            values[name] = parts[0][1]
            continue
        like = parts[0][1]
        out = like.new_empty((n,) + tuple(like.shape[1:]))
        for idx, v in parts:
            out[idx] = v
        values[name] = out
    return dataclasses.replace(first, **values)


def _adapts_per_chain(kernel: TransitionKernel) -> bool:
    return any(getattr(k, "adapting", False) and getattr(k, "per_chain", False) for k in unwrap(kernel))


@contextmanager
def _step_size_of(kernel: TransitionKernel, index: torch.Tensor):
    """A per-chain step size (frozen per-chain adaptation) cut to the chains `index` while they step."""
    base = kernel.base
    s = getattr(base, "step_size", None)
    per_chain = isinstance(s, torch.Tensor) and s.dim() == 1
    if per_chain:
        base.step_size = s[index.to(s.device)]
    try:
        yield
    finally:
        if per_chain:
            base.step_size = s


class MixtureKernel(TransitionKernel):
    """With probability `p` one step of `first`, else one step of `second`, drawn per chain and per step
    from this kernel's generator, independently of the state.

    Exact when both parts are: each leaves the target invariant, and so does their mixture
    p K_first + (1 - p) K_second. Both parts must take the same kind of state (e.g. `ChainState`);
    a cached field one part does not keep (the learned sampler keeps no gradient) is re-evaluated
    through the other part's `refresh` for the chains that go to it. Both parts draw from the
    mixture's generator, so one seed fixes the run.

    `StepInfo.extras["mixture_component"]` says which part moved each chain (0: `first`, 1: `second`);
    the parts' own extras are kept, NaN (or zero, if not floating) for the chains the other part moved.
    Their names and dtypes are read before the first step (and again when the chains' dtype or device changes)
    from one proposal of each part's base kernel on the first chain with the generator restored afterwards
    (an MH kernel changes nothing else when it steps).
    `num_grad_evals` is the mean per chain over the chains of the step. Warmup hooks reach both parts;
    a part that adapts per chain during a mixture step is refused (its schedule is per chain, while each
    step sees only the chains that chose it).
    """

    def __init__(self, first: TransitionKernel, second: TransitionKernel, p: float, seed: Seed = None):
        for what, k in (("first", first), ("second", second)):
            if not isinstance(k, TransitionKernel):
                raise TypeError(f"mixture part {what} must be an entropy_mcmc TransitionKernel, got "
                                f"{type(k).__name__}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0 or math.isnan(p):
            raise ValueError(f"the mixture probability p must lie in [0, 1], got {p!r}")
        super().__init__(seed)
        self.parts = (first, second)
        self.p = float(p)
        self._needs: List[Optional[set]] = [None, None]
        self._extras: Optional[Dict[str, torch.dtype]] = None
        self._extras_like: Optional[Tuple[torch.dtype, torch.device]] = None  # the chains they were read on

    @property
    def is_calibrated(self) -> bool:
        return all(k.is_calibrated for k in self.parts)

    def reseed(self, seed: Seed, device=None) -> None:
        super().reseed(seed, device)
        self._share_generator(device)

    def _share_generator(self, device) -> None:
        for k in self.parts:
            k.reseed(self.generator, device)

    def _ensure_generator(self, like: torch.Tensor) -> None:
        if self.generator is None or self.generator.device != like.device:
            self.generator = make_generator(self._seed, like.device)
            self._share_generator(like.device)
        elif any(k.base.generator is not self.generator for k in self.parts):
            self._share_generator(like.device)

    def init(self, position: torch.Tensor):
        """Both parts' initial states; the one with the most cached fields is the mixture's."""
        self._ensure_generator(position)
        states = [k.init(position) for k in self.parts]
        self._needs = [set(_fields(s)) - _missing(s) for s in states]
        return min(states, key=lambda s: len(_missing(s)))

    def refresh(self, state):
        rich = min(range(2), key=lambda i: -len(self._needs[i] or ()))
        return self.parts[rich].refresh(state)

    def record(self, state):
        return self.parts[1].record(state)

    def start_warmup(self, num_steps: int) -> None:
        for k in self.parts:
            k.start_warmup(num_steps)

    def end_warmup(self) -> None:
        for k in self.parts:
            k.end_warmup()

    def choose_first(self, state) -> torch.Tensor:
        """Per chain, whether it takes a step of `first`: uniform draws below p, whatever the state."""
        like = state_tensors(state)[0]
        u = torch.rand(num_chains(state), generator=self.generator, dtype=torch.float64, device=like.device)
        return u < self.p

    def _refreshed(self, i: int, state):
        """`state` with the cached fields part `i` needs and lacks re-evaluated (None if it lacks none)."""
        needs = self._needs[i]
        if (needs is None and _missing(state)) or (needs and needs & _missing(state)):
            return self.parts[i].refresh(state)
        return None

    def _extras_template(self, state) -> Dict[str, torch.dtype]:
        saved = self.generator.get_state()
        index = torch.zeros(1, dtype=torch.long, device=state_tensors(state)[0].device)
        out: Dict[str, torch.dtype] = {}
        try:
            for i, part in enumerate(self.parts):
                sub = take_chains(state, index)
                sub = self._refreshed(i, sub) or sub
                with _step_size_of(part, index):
                    _, info = part.base.step(sub)
                for name, value in info.extras.items():
                    out.setdefault(name, value.dtype)
        finally:
            self.generator.set_state(saved)
        return out

    def _step_part(self, i: int, state):
        part = self.parts[i]
        if _adapts_per_chain(part):
            raise ValueError(f"mixture part {type(part.base).__name__} adapts its step size per chain, which a mixture "
                             "cannot do (each step runs only the chains that chose that part); adapt it shared")
        fresh = self._refreshed(i, state)
        if fresh is None:
            return part.step(state)
        new, info = part.step(fresh)
        if "grad" in _missing(state) and getattr(part.base, "needs_grad", False):
            info.num_grad_evals += 1  # the refresh evaluated the gradient the other part does not keep
        return new, info

    def step(self, state) -> Tuple[object, StepInfo]:
        like = state_tensors(state)[0]
        if self.generator is None:
            self._ensure_generator(like)
        if self._extras is None or self._extras_like != (like.dtype, like.device):
            self._extras, self._extras_like = self._extras_template(state), (like.dtype, like.device)
        n = num_chains(state)
        first = self.choose_first(state)
        pieces, infos = [], []
        for i, mask in enumerate((first, ~first)):
            index = mask.nonzero().flatten()
            if index.numel() == 0:
                continue
            with _step_size_of(self.parts[i], index):
                new, info = self._step_part(i, take_chains(state, index))
            pieces.append((index, new))
            infos.append((index, i, info))
        return merge_chains(pieces, n), self._merge_infos(infos, n, like)

    def _merge_infos(self, infos, n: int, like: torch.Tensor) -> StepInfo:
        dev = like.device
        acc = torch.empty(n, dtype=infos[0][2].acceptance_prob.dtype, device=dev)
        accepted = torch.empty(n, dtype=torch.bool, device=dev)
        diverging = torch.empty(n, dtype=torch.bool, device=dev)
        component = torch.empty(n, dtype=torch.int64, device=dev)
        with_step = any(getattr(k.base, "step_size", None) is not None for k in self.parts)
        step = torch.full((n,), float("nan"), dtype=torch.float64, device=dev) if with_step else None
        grads = 0.0
        extras = {name: torch.full((n,), float("nan"), dtype=dtype, device=dev) if dtype.is_floating_point
                  else torch.zeros(n, dtype=dtype, device=dev) for name, dtype in self._extras.items()}
        for index, i, info in infos:
            acc[index] = info.acceptance_prob.to(acc.dtype)
            accepted[index] = info.accepted
            diverging[index] = info.diverging
            component[index] = i
            grads += info.num_grad_evals * index.numel() / n
            for name, value in info.extras.items():
                if name in extras:
                    extras[name][index] = value.to(extras[name].dtype)
            if step is not None and info.step_size is not None:
                s = torch.as_tensor(info.step_size).to(dev, torch.float64)
                step[index] = s.expand(index.numel()) if s.dim() == 0 else s
        extras["mixture_component"] = component
        return StepInfo(acc, accepted, diverging, grads, extras, step)


__all__ = ["MixtureKernel", "take_chains", "merge_chains"]

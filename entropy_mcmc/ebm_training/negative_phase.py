"""The negative phase of maximum-likelihood training of an energy model, as one object any training loop calls:
a replay buffer, any kernel, the kernel's step-size adaptation and diagnostics (thesis section 4.5; persistent
contrastive divergence, Tieleman 2008).

    phase = NegativePhase(EnergyTarget(model), kernel="mala", k_steps=30, event_shape=(2,))
    for x in loader:
        neg = phase(x)                                   # K kernel steps from the buffer
        loss = ml_loss(model(x), model(neg))             # mean E(data) - mean E(negatives) (+ penalty)
        optimizer.zero_grad(); loss.backward(); optimizer.step()

Each call draws len(x) states from a buffer of `buffer_size` (exactly round(reinit_fraction * n) of them
replaced by `noise`), advances them `k_steps` steps of the kernel, whose energies and gradients are evaluated
afresh under the current weights (`kernel.init`), and puts them back. `buffer_size=0` starts the chains at
the data batch instead (CD-K, Hinton 2002). A calibrated kernel with a step size is adapted toward
`target_accept` by `samplers.StepSizeAdaptation` with the Robbins-Monro controller, once per call from the
mean acceptance of its K steps (the model moves, so the control never freezes; within a call the step size is
fixed and the K steps are one homogeneous Metropolis-Hastings chain).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch

from ..samplers.adaptation import StepSizeAdaptation
from ..samplers.base import TransitionKernel, find_kernel, kernel_name, unwrap
from ..samplers.learned.kernel import LearnedSampler
from ..samplers.registry import build_kernel, get_kernel_spec
from .energy_target import EnergyTarget

KernelArg = Union[str, TransitionKernel, Callable[[EnergyTarget], TransitionKernel]]


class ReplayBuffer:
    """`size` persistent negatives `[size, *event]` (PCD's replay buffer).

    `draw(n)` takes n distinct states at random, the first round(reinit_fraction * n) of them (a random subset,
    since the draw is a random permutation) replaced by `noise(k)`; `put` writes the advanced states back. The
    states keep the dtype and device of the initial noise.
    """

    def __init__(self, size: int, noise: Callable[[int], torch.Tensor], reinit_fraction: float,
                 generator: torch.Generator):
        self.noise, self.reinit_fraction, self.generator = noise, float(reinit_fraction), generator
        self.positions = noise(size)

    def __len__(self) -> int:
        return self.positions.shape[0]

    def num_reinit(self, n: int) -> int:
        return int(round(self.reinit_fraction * n))

    def draw(self, n: int, reinit: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """(indices `[n]`, states `[n, *event]`): distinct buffer entries, the first `num_reinit(n)` replaced by
        noise when `reinit`."""
        idx = torch.randperm(len(self), generator=self.generator)[:n].to(self.positions.device)
        x = self.positions[idx]
        k = self.num_reinit(n) if reinit else 0
        if k:
            x = torch.cat([self.noise(k), x[k:]])
        return idx, x

    def put(self, idx: torch.Tensor, positions: torch.Tensor) -> None:
        self.positions[idx] = positions.detach().to(self.positions)

    def state_dict(self) -> Dict[str, Any]:
        return {"positions": self.positions.cpu(), "rng": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["positions"].shape != self.positions.shape:
            raise ValueError(f"the saved buffer has shape {list(state['positions'].shape)}, this one "
                             f"{list(self.positions.shape)}")
        self.positions.copy_(state["positions"])
        self.generator.set_state(state["rng"])


class NegativePhase:
    """Negatives for one contrastive update per call (module docstring).

    Parameters
    ----------
    target
        The `EnergyTarget` of the model in training (an `nn.Module` is wrapped in one).
    kernel
        A registry name (any kernel whose capabilities fit a real-valued energy; `entropy-mcmc list`),
        a `TransitionKernel` built on `target`, or a callable `target -> TransitionKernel`. A kernel whose
        schedule spans a number of steps (annealed Langevin) spans the `k_steps` of one call.
    k_steps
        Kernel steps per call.
    buffer_size
        Replay-buffer states (0: CD-K, chains start at the data batch).
    reinit_fraction
        Share of each draw re-initialized from noise.
    noise
        `n -> [n, *event]` initial states; default N(0, noise_scale^2 I) of `event_shape` in `dtype`.
    target_accept, adapt_rate_init, adapt_rate
        The Robbins-Monro step-size control (both rates 0: a fixed
        step size).
    step_size, kernel_options
        The kernel's initial step size and builder keywords (a registry name only);
        `{"replicas": R}` runs it inside replica exchange (`build_kernel`), its step sizes controlled per
        temperature, every replica of a chain starting each call at the chain's buffer state.
    seed
        The buffer's and the kernel's random streams (or `generator` for the buffer's).
    reduce
        Averages a tensor over the ranks of a process group (the step size stays the same on every rank).

    Notes
    -----
    After a call, `accept` is the mean acceptance of its K steps (NaN for K = 0), `last_state` the kernel's state;
    `name` names the kernel (`kernel_name`), `kernel` is it with its step-size adaptation (`adaptation`, or None).
    """

    def __init__(self, target: Union[EnergyTarget, torch.nn.Module], kernel: KernelArg = "mala", k_steps: int = 30,
                 buffer_size: int = 10000, reinit_fraction: float = 0.05,
                 noise: Optional[Callable[[int], torch.Tensor]] = None, event_shape: Optional[Sequence[int]] = None,
                 noise_scale: float = 1.0, target_accept: float = 0.6, adapt_rate_init: float = 1.0,
                 adapt_rate: float = 0.05, step_size: Optional[float] = None,
                 kernel_options: Optional[Dict[str, Any]] = None, seed: int = 0,
                 generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32, device="cpu",
                 reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        if isinstance(target, torch.nn.Module):
            target = EnergyTarget(target)
        if not isinstance(target, EnergyTarget):
            raise TypeError(f"target must be an EnergyTarget or an nn.Module energy, got {type(target).__name__}")
        for name, v in (("k_steps", k_steps), ("buffer_size", buffer_size)):
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not 0.0 <= reinit_fraction <= 1.0:
            raise ValueError(f"reinit_fraction must lie in [0, 1], got {reinit_fraction!r}")
        if buffer_size == 0 and k_steps == 0:
            raise ValueError("CD-0 (no buffer, k_steps=0) has negatives equal to the data: a zero gradient")
        self.target, self.k_steps, self.reduce = target, int(k_steps), reduce or (lambda t: t)
        self.generator = generator or torch.Generator().manual_seed(seed)
        if noise is None:
            if event_shape is None:
                raise ValueError("give event_shape (the shape of one point) or a noise function n -> [n, *event]")
            event = tuple(event_shape)

            def noise(n: int) -> torch.Tensor:
                x = noise_scale * torch.randn((n,) + event, generator=self.generator, dtype=torch.float64)
                return x.to(dtype=dtype, device=device)
        self.noise = noise
        self.buffer = ReplayBuffer(int(buffer_size), noise, reinit_fraction, self.generator) if buffer_size else None
        kernel = self._resolve(kernel, step_size, kernel_options or {})
        self._check(kernel)
        self.name = kernel_name(kernel)
        kernel.reseed(seed, device)
        base = kernel.base
        adapts = (max(adapt_rate, adapt_rate_init) > 0 and base.is_calibrated and self.k_steps > 0
                  and getattr(base, "step_size", None) is not None and find_kernel(kernel, LearnedSampler) is None)
        control = dict(controller="robbins-monro", rate_init=adapt_rate_init, rate=adapt_rate,
                       update_every=self.k_steps, reduce=reduce)
        inside = getattr(kernel, "adapt_step_size", None)  # replica exchange adapts its inner kernel per temperature
        self.adaptation = None if not adapts else inside(target_accept, **control) if inside \
            else StepSizeAdaptation(kernel, target_accept, **control)
        self.kernel = kernel if inside else self.adaptation or kernel
        self.accept = float("nan")
        self.last_state = None

    def _resolve(self, kernel: KernelArg, step_size, options: Dict[str, Any]) -> TransitionKernel:
        if isinstance(kernel, str):
            spec = get_kernel_spec(kernel)
            if spec.capabilities.trainable:
                raise ValueError(f"kernel {kernel!r} carries a model trained for its target, which here keeps "
                                 "moving: train it in the loop (ContrastiveTrainer does) or pass a kernel object")
            options = dict(options)
            if spec.capabilities.schedule_option:  # one schedule per call of k_steps
                options.setdefault(spec.capabilities.schedule_option, max(self.k_steps, 1))
            try:
                return build_kernel(kernel, self.target, step_size=step_size, **options)
            except (TypeError, ValueError) as err:
                raise ValueError(f"kernel {kernel!r} cannot serve as negative sampler of an energy model: "
                                 f"{err}") from None
        if isinstance(kernel, TransitionKernel):
            return kernel
        if callable(kernel):
            k = kernel(self.target)
            if not isinstance(k, TransitionKernel):
                raise TypeError(f"the kernel callable returned a {type(k).__name__}, not a TransitionKernel")
            return k
        raise TypeError(f"kernel must be a registry name, a TransitionKernel or a callable target -> kernel, "
                        f"got {type(kernel).__name__}")

    def _check(self, kernel: TransitionKernel) -> None:
        """ValueError unless `kernel` can sample this model: a learned sampler of the model's dimension, a kernel
        built on this model, a gradient where the kernel needs one, a state with a position."""
        target, name = self.target, kernel_name(kernel)
        learned = find_kernel(kernel, LearnedSampler)
        if learned is not None and learned.model.dim != target.dim:
            raise ValueError(f"the learned sampler has dimension {learned.model.dim}, but the energy model's points "
                             f"have {target.dim} ({list(target.event_shape)})")
        parts = [kernel] + list(getattr(unwrap(kernel)[-1], "parts", ()))
        for part in parts:
            t = getattr(part.base, "target", None)
            if t is not None and not (isinstance(t, EnergyTarget) and t.model is target.model):
                raise ValueError(f"kernel {name} samples {getattr(t, 'name', type(t).__name__)}, not this energy "
                                 "model: build it on trainer.target(), or pass a registry name or a callable "
                                 "target -> kernel")
        rng = self.generator.get_state()
        probe = self.noise(2)
        self.generator.set_state(rng)  # the probe leaves the buffer's random stream as it was
        needs_grad = any(getattr(p.base, "needs_grad", True) for p in parts)
        try:
            if needs_grad:
                _, g = target.energy_and_grad(probe)
                if g is None or not torch.isfinite(g).all():
                    raise ValueError("the gradient is not finite at noise")
            else:
                target.energy(probe)
        except (RuntimeError, ValueError) as err:
            what = "the gradient of the energy with respect to x" if needs_grad else "the energy"
            raise ValueError(f"kernel {name} cannot serve as negative sampler: it needs {what}, which this model "
                             f"does not provide ({str(err).splitlines()[0]})") from None
        try:
            state = kernel.init(probe)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"kernel {name} cannot serve as negative sampler of an energy model: starting it at "
                             f"noise failed ({str(err).splitlines()[0]})") from None
        if not hasattr(state, "position"):
            raise ValueError(f"kernel {name} has a state without a `position`: the buffer cannot store it")

    def __call__(self, x_data: torch.Tensor) -> torch.Tensor:
        """`len(x_data)` negatives (detached): K kernel steps from the buffer, or from `x_data` without one."""
        if self.buffer is not None:
            idx, start = self.buffer.draw(x_data.shape[0])
        else:
            start = x_data.detach()
        state = self.kernel.init(start)  # energies and gradients under the current weights
        acc = torch.zeros((), dtype=torch.float64, device=start.device)
        for _ in range(self.k_steps):
            state, info = self.kernel.step(state)
            acc = acc + info.acceptance_prob.to(acc).mean()
        self.last_state = state
        if self.buffer is not None:
            self.buffer.put(idx, state.position)
        self.accept = float(self.reduce(acc / self.k_steps)) if self.k_steps else float("nan")
        return state.position.detach()

    @property
    def step_size(self) -> float:
        """The kernel's mean step size (NaN without one)."""
        s = self.kernel.step_size_value
        return float(s.float().mean()) if s is not None else float("nan")

    def proposal_entropy(self) -> float:
        """The kernel's proposal entropy (nats) averaged over the last negatives, where the kernel has one."""
        base = self.kernel.base
        if self.last_state is None or not hasattr(base, "proposal_entropy"):
            return float("nan")
        with torch.no_grad():
            h = base.proposal_entropy(self.last_state)
        return float(self.reduce(h.double().mean()))

    def state_dict(self) -> Dict[str, Any]:
        """Buffer, kernel random stream, step size and its control: what resuming needs (this rank's)."""
        gen = self.kernel.base.generator
        s = self.kernel.step_size_value
        return {"buffer": None if self.buffer is None else self.buffer.state_dict(),
                "kernel_rng": None if gen is None else gen.get_state(),
                "step_size": None if s is None else s.cpu(),
                "adaptation": None if self.adaptation is None else self.adaptation.state_dict()}

    def load_state_dict(self, state: Dict[str, Any], kernel_state: bool = True) -> None:
        """Restore a `state_dict`; `kernel_state=False` keeps this phase's random streams and buffer (another
        world size) and restores only the step size and its control."""
        base = self.kernel.base
        if state["step_size"] is not None and getattr(base, "step_size", None) is not None:
            base.step_size = state["step_size"].to(base.step_size)
        if self.adaptation is not None and state.get("adaptation") is not None:
            self.adaptation.load_state_dict(state["adaptation"])
        if not kernel_state:
            return
        if self.buffer is not None and state["buffer"] is not None:
            self.buffer.load_state_dict(state["buffer"])
        if base.generator is not None and state["kernel_rng"] is not None:
            base.generator.set_state(state["kernel_rng"])


__all__ = ["NegativePhase", "ReplayBuffer", "KernelArg"]

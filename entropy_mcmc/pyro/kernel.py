"""`PyroKernel`: any entropy_mcmc kernel as a Pyro `MCMCKernel`, so `pyro.infer.MCMC` runs it on any model.

Pyro's `MCMC` drives a kernel through `setup(warmup_steps, *args, **kwargs)`, then
`sample(params) -> params` once per iteration (warmup first), `logging()` for the
progress bar and `diagnostics()` at the end of each chain, then `cleanup()`. Pyro never
calls `end_warmup`: like Pyro's HMC, the adapter counts iterations `_t` against
`_warmup_steps` and freezes its adaptation after the last warmup iteration.

Each Pyro chain is one chain `[1, d]` of ours on the flat unconstrained space of
`pyro.infer.mcmc.util.initialize_model` (sites in sorted order, transforms back to the
constrained space by Pyro). Randomness comes from a `torch.Generator` seeded from
torch's global generator at each chain's first step, so `pyro.set_rng_seed` makes a
run reproducible and Pyro's chains (sequential or in worker processes, which Pyro
reseeds per chain) differ.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Dict, Optional, Union

import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model

from ..samplers.adaptation import StepSizeAdaptation
from ..samplers.base import TransitionKernel
from ..samplers.hmc import HMC
from ..samplers.jitter import StepSizeJitter
from ..samplers.mala import MALA
from ..samplers.rwm import RandomWalkMetropolis
from ..targets.base import Target
from .layout import SiteLayout
from .target import PotentialTarget

__all__ = ["PyroKernel", "make_kernel", "find_reasonable_step_size", "KERNEL_NAMES"]

KERNEL_NAMES = ("rwm", "mala", "hmc", "learned")
_CLASSES = {"rwm": RandomWalkMetropolis, "mala": MALA, "hmc": HMC}
# Optimal acceptance rates: RWM 0.234 (Roberts et al. 1997), MALA 0.574 (Roberts & Rosenthal 1998),
# HMC 0.8 (Stan's and Pyro's default); a kernel may declare its own as `default_target_accept`.
_TARGET_ACCEPT = {RandomWalkMetropolis: 0.234, MALA: 0.574, HMC: 0.8}

KernelSpec = Union[str, Callable[[Target], TransitionKernel]]


def make_kernel(spec: KernelSpec, target: Target, **options) -> TransitionKernel:
    """One of our kernels on `target`: by name (`rwm`, `mala`, `hmc`, `learned`) or a callable `target -> kernel`."""
    if callable(spec):
        kernel = spec(target, **options)
        if not isinstance(kernel, TransitionKernel):
            raise ValueError(f"the kernel callable must return an entropy_mcmc TransitionKernel, "
                             f"got {type(kernel).__name__}")
        return kernel
    if spec == "learned":
        from .learned import make_learned_kernel

        return make_learned_kernel(target, **options)
    if spec not in _CLASSES:
        raise ValueError(f"unknown kernel {spec!r}; expected one of {KERNEL_NAMES} or a callable target -> kernel")
    return _CLASSES[spec](target, **options)


def default_target_accept(kernel: TransitionKernel) -> float:
    declared = getattr(kernel, "default_target_accept", None)
    if declared is not None:
        return float(declared)
    for cls, value in _TARGET_ACCEPT.items():
        if isinstance(kernel, cls):
            return value
    return 0.8


def find_reasonable_step_size(kernel: TransitionKernel, state, max_doublings: int = 40) -> torch.Tensor:
    """Hoffman & Gelman (2014) Algorithm 4: halve or double the step size until the acceptance
    probability of one proposal from `state` crosses 1/2. The chain does not move."""
    s = float(torch.as_tensor(kernel.step_size).reshape(-1)[0])
    _, info = kernel.step(state)
    direction = 1.0 if float(info.acceptance_prob.mean()) > 0.5 else -1.0
    for _ in range(max_doublings):
        kernel.step_size = s * 2.0 ** direction
        _, info = kernel.step(state)
        a = float(info.acceptance_prob.mean())
        if (direction > 0 and not a > 0.5) or (direction < 0 and a > 0.5):
            return torch.tensor(s if direction > 0 else s * 2.0 ** direction, dtype=torch.float64)
        s *= 2.0 ** direction
    return torch.tensor(s, dtype=torch.float64)


class PyroKernel(MCMCKernel):
    """Our kernels inside `pyro.infer.MCMC`: `MCMC(PyroKernel(model, "mala"), num_samples, warmup_steps).run(data)`.

    Args:
        model: a Pyro model; `MCMC.run(*args, **kwargs)` passes its arguments.
        kernel: `rwm`, `mala`, `hmc`, `learned`, or a callable taking a `Target` and returning a kernel.
        adapt_step_size: run our dual-averaging `StepSizeAdaptation` during Pyro's warmup (default:
            yes, except for `learned`, whose step size is the eps it was trained with).
        target_accept: its target acceptance (default per kernel: RWM 0.234, MALA 0.574, HMC 0.8).
        adapt_mass_matrix: also adapt a diagonal mass matrix (default: True for kernels with an
            `inv_mass`, i.e. HMC).
        find_step_size: when no `step_size` is given, start from Hoffman & Gelman's heuristic.
        step_size_jitter: after warmup, redraw the step size uniformly in [s (1 - j), s (1 + j)]
            before every step (Stan's `stepsize_jitter`; breaks HMC's fixed-path-length resonance).
        transforms, max_plate_nesting, jit_compile, ignore_jit_warnings, jit_options, init_strategy:
            as for Pyro's HMC, passed to `initialize_model` (`jit_compile=True` traces the potential
            with the PyTorch JIT, which roughly halves Pyro's per-evaluation overhead).
        **kernel_options: passed to the kernel (`step_size`, `num_steps`, `inv_mass`, ... or, for
            `learned`, `sampler=path` or the training options of `make_learned_kernel`: `train`,
            `model_config`, `warmup_steps`, `save_to`).

    `learned` trains, at the first warmup iteration, on the chain-vectorized `PyroTarget` of the
    same model and arguments (so the model must vectorize, or pass `sampler=path`); the following
    chains of the same run reuse the trained sampler, available as `train_result`. Each chain then
    starts from a random one of the training's bootstrap chains, which training has brought to the
    typical set, instead of Pyro's initial point.

    `sampler` is the kernel of the current (after the run: the last) chain run in this process,
    wrapped in `StepSizeAdaptation` when it adapts. `diagnostics()` gives Pyro's `divergences` (draw
    indices) and `acceptance rate`, the final `step size`, and per-draw `sample_stats`
    (acceptance_rate, is_accepted, diverging, energy, lp, step_size) that
    `entropy_mcmc.pyro.from_pyro` adds to ArviZ's `sample_stats`.
    """

    def __init__(self, model: Callable, kernel: KernelSpec = "mala", *, adapt_step_size: Optional[bool] = None,
                 target_accept: Optional[float] = None, adapt_mass_matrix: Optional[bool] = None,
                 find_step_size: bool = True, step_size_jitter: float = 0.0, transforms: Optional[Dict] = None,
                 max_plate_nesting: Optional[int] = None, jit_compile: bool = False,
                 ignore_jit_warnings: bool = False, jit_options: Optional[Dict] = None,
                 init_strategy: Callable = init_to_uniform, **kernel_options):
        if model is None or not callable(model):
            raise ValueError("PyroKernel needs a Pyro model (a callable)")
        if isinstance(kernel, str) and kernel not in KERNEL_NAMES:
            raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNEL_NAMES} or a callable")
        if not (isinstance(kernel, str) or callable(kernel)):
            raise ValueError(f"kernel must be a name or a callable, got {type(kernel).__name__}")
        if target_accept is not None and not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}")
        if not 0.0 <= step_size_jitter < 1.0:
            raise ValueError(f"step_size_jitter must lie in [0, 1), got {step_size_jitter!r}")
        self.model = model
        self.kernel_spec = kernel
        self.kernel_options = kernel_options
        self.adapt_step_size = adapt_step_size
        self.target_accept = target_accept
        self.adapt_mass_matrix = adapt_mass_matrix
        self.find_step_size = find_step_size
        self.step_size_jitter = float(step_size_jitter)
        self._user_transforms = transforms
        self.transforms = transforms
        self._max_plate_nesting = max_plate_nesting
        self._jit_compile = jit_compile
        self._ignore_jit_warnings = ignore_jit_warnings
        self._jit_options = jit_options
        self._init_strategy = init_strategy
        self._initial_params = None
        self.potential_fn = None
        self.target: Optional[PotentialTarget] = None
        self.sampler: Optional[TransitionKernel] = None
        self.train_result = None
        self._trained = None
        self._reset()

    # -- Pyro's MCMCKernel interface ------------------------------------------------------------
    @property
    def initial_params(self):
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params):
        self._initial_params = params

    def _reset(self) -> None:
        self._t = 0
        self._warmup_steps = 0
        self._state = None
        self._last_params = None
        self._accept_cnt = 0
        self._mean_accept_prob = 0.0
        self._divergences = []
        self._stats: Dict[str, list] = {}

    def setup(self, warmup_steps: int, *args, **kwargs) -> None:
        self._reset()
        self.sampler = None
        self._warmup_steps = int(warmup_steps)
        self._model_args, self._model_kwargs = args, kwargs
        init, potential_fn, transforms, _ = initialize_model(
            self.model, args, kwargs, transforms=self._user_transforms, max_plate_nesting=self._max_plate_nesting,
            jit_compile=self._jit_compile, jit_options=self._jit_options, skip_jit_warnings=self._ignore_jit_warnings,
            init_strategy=self._init_strategy, initial_params=self._initial_params)
        if not init:
            raise ValueError("PyroKernel: the model has no continuous latent sites to sample")
        self.potential_fn = potential_fn
        self.transforms = transforms
        self._initial_params = init
        self.layout = SiteLayout.from_params(init)
        dtype = init[self.layout.names[0]].dtype
        self.target = PotentialTarget(potential_fn, self.layout, dtype, getattr(self.model, "__name__", "pyro_model"))

    def cleanup(self) -> None:
        """Forget the chain (the next `setup` starts a new one); `sampler` stays for inspection."""
        self._reset()
        self._initial_params = None

    def _build(self, params: Dict[str, torch.Tensor]) -> None:
        """The kernel for this chain (trained first, for `learned`), its first state, and its adaptation."""
        learned = self.kernel_spec == "learned"
        kernel = self._learned_kernel() if learned else make_kernel(self.kernel_spec, self.target,
                                                                      **self.kernel_options)
        seed = int(torch.randint(0, 2 ** 62, ()))  # from torch's global generator: pyro.set_rng_seed applies
        position = self.layout.flatten(params)[None]
        buffer = self._trained[1].extra.get("buffer") if learned and self._trained is not None else None
        if buffer is not None and "sampler" not in self.kernel_options:
            # start where training left its bootstrap chains (the typical set), not at Pyro's initial point
            row = int(torch.randint(0, buffer.shape[0], ()))
            position = buffer[row:row + 1].reshape(position.shape).to(position)
        kernel.reseed(seed, position.device)
        state = kernel.init(position)
        has_step = hasattr(kernel, "step_size") and getattr(kernel, "step_size", None) is not None
        if has_step and self.find_step_size and "step_size" not in self.kernel_options and not learned:
            kernel.step_size = find_reasonable_step_size(kernel, state)
        self._target_accept = self.target_accept or default_target_accept(kernel)
        adapt = (not learned) if self.adapt_step_size is None else self.adapt_step_size
        if self._warmup_steps > 0 and adapt and has_step:
            mass = hasattr(kernel, "inv_mass") if self.adapt_mass_matrix is None else self.adapt_mass_matrix
            kernel = StepSizeAdaptation(kernel, self._target_accept, adapt_mass_matrix=mass)
            state = kernel.init(position)
        if self.step_size_jitter > 0 and has_step:
            kernel = StepSizeJitter(kernel, self.step_size_jitter)
        kernel.start_warmup(self._warmup_steps)
        if self._warmup_steps == 0:
            kernel.end_warmup()
        self.sampler, self._state = kernel, state

    def _learned_kernel(self) -> TransitionKernel:
        """The learned sampler: loaded (`sampler=`), reused from an earlier chain of this run, or trained now."""
        from .learned import make_learned_kernel
        from .target import PyroTarget

        options = dict(self.kernel_options)
        if options.get("sampler") is not None:
            return make_learned_kernel(self.target, **options)
        # Pyro's MCMC.run hands every chain of one run the same argument objects
        key = (tuple(id(a) for a in self._model_args),
               tuple(sorted((k, id(v)) for k, v in self._model_kwargs.items())))
        if self._trained is not None and self._trained[0] == key:
            options["sampler"] = self._trained[1]
            options = {k: v for k, v in options.items() if k in ("sampler", "step_size")}
            return make_learned_kernel(self.target, **options)
        try:
            train_target = PyroTarget(self.model, self._model_args, self._model_kwargs,
                                      transforms=self._user_transforms, max_plate_nesting=self._max_plate_nesting,
                                      jit_compile=self._jit_compile)
        except ValueError as e:
            raise ValueError(f"kernel='learned' trains on the chain-vectorized target of the model, which failed: {e} "
                             "Alternatively pass sampler=path with a sampler trained elsewhere.") from e
        options.setdefault("seed", int(torch.randint(0, 2 ** 31, ())))
        kernel = make_learned_kernel(self.target, train_target=train_target, **options)
        self.train_result = kernel.train_result
        self._trained = (key, kernel.train_result)
        return kernel

    def sample(self, params: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if self.sampler is None or self._state is None:
            self._build(params)
        elif params is not self._last_params:  # the caller moved the chain: start from its params
            self._state = self.sampler.init(self.layout.flatten(params)[None])
        state, info = self.sampler.step(self._state)
        self._state = state
        self._t += 1
        accept_prob = float(info.acceptance_prob[0])
        if self._t <= self._warmup_steps:
            n = self._t
            if self._t == self._warmup_steps:
                self.sampler.end_warmup()
        else:
            n = self._t - self._warmup_steps
            self._record(state, info, accept_prob, n - 1)
        self._mean_accept_prob += (accept_prob - self._mean_accept_prob) / n
        out = self.layout.unflatten(state.position[0].detach())
        self._last_params = out
        return out

    def _record(self, state, info, accept_prob: float, draw: int) -> None:
        accepted, diverging = bool(info.accepted[0]), bool(info.diverging[0])
        self._accept_cnt += accepted
        if diverging:
            self._divergences.append(draw)
        potential = float(state.energy[0])
        energy = info.extras.get("energy")
        rec = {"acceptance_rate": accept_prob, "is_accepted": accepted, "diverging": diverging,
               "energy": potential if energy is None else float(energy[0]), "lp": -potential,
               "step_size": self.step_size}
        for k, v in rec.items():
            self._stats.setdefault(k, []).append(v)

    @property
    def step_size(self) -> float:
        s = getattr(self.sampler, "step_size", None) if self.sampler is not None else None
        return float("nan") if s is None else float(torch.as_tensor(s).reshape(-1)[0])

    def logging(self):
        return OrderedDict([("step size", f"{self.step_size:.2e}"), ("acc. prob", f"{self._mean_accept_prob:.3f}"),
                            ("div", len(self._divergences))])

    def diagnostics(self):
        steps = self._t - self._warmup_steps
        stats = {k: torch.tensor(v, dtype=torch.bool if k in ("is_accepted", "diverging") else torch.float64)
                 for k, v in self._stats.items()}
        return {"divergences": list(self._divergences),
                "acceptance rate": self._accept_cnt / steps if steps > 0 else math.nan,
                "step size": self.step_size,
                "sample_stats": stats}

    def __repr__(self) -> str:
        name = self.kernel_spec if isinstance(self.kernel_spec, str) else getattr(self.kernel_spec, "__name__", "?")
        return f"PyroKernel(model={getattr(self.model, '__name__', self.model)!r}, kernel={name!r})"

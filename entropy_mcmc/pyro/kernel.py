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

import dataclasses
import math
from collections import OrderedDict
from typing import Callable, Dict, Optional, Union

import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model

from ..samplers.base import TransitionKernel
from ..samplers.registry import KernelSpec, build_kernel, get_kernel_spec, kernel_names
from ..targets.base import Target
from ..targets.layout import SiteLayout
from .target import PotentialTarget

__all__ = ["PyroKernel", "find_reasonable_step_size"]

KernelChoice = Union[str, Callable[[Target], TransitionKernel]]


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

    Parameters
    ----------
    model
        A Pyro model; `MCMC.run(*args, **kwargs)` passes its arguments.
    kernel
        A registry name (`rwm`, `mala`, `hmc`, `learned`, or a plugged-in one: `entropy-mcmc list`),
        or a callable taking a `Target` and returning a kernel.
    adapt_step_size
        Run our dual-averaging `StepSizeAdaptation` during Pyro's warmup (default:
        yes, except for `learned`, whose step size is the eps it was trained with; its warmup is run by
        step-size-adapted MALA, which then hands the chain over, and stays in a 0.05 share of the steps).
    target_accept
        Its target acceptance (default: the registry's, RWM 0.234, MALA 0.574, HMC 0.8;
        0.8 for a callable).
    adapt_mass_matrix
        Adapt a mass matrix in Stan's windows, True/"diag" or "dense", or not (False).
        Default: the registry's (HMC, NUTS: diagonal; RWM: none), but diagonal where that is dense (MALA,
        the warmup of `learned`): each window's variances are those of the chain's draws in it, and one
        chain's windows are too short for a dense one; diagonal for a callable kernel with an `inv_mass`.
    find_step_size
        When no `step_size` is given, start from Hoffman & Gelman's heuristic.
    step_size_jitter
        After warmup, redraw the step size uniformly in [s (1 - j), s (1 + j)]
        before every step (Stan's `stepsize_jitter`; breaks HMC's fixed-path-length resonance).
    transforms, max_plate_nesting, jit_compile, ignore_jit_warnings, jit_options, init_strategy
        as for Pyro's HMC, passed to `initialize_model` (`jit_compile=True` traces the potential
        with the PyTorch JIT, which roughly halves Pyro's per-evaluation overhead).
    **kernel_options
        Passed to the kernel (`step_size`, `num_steps`, `inv_mass`, ... or, for
        `learned`, `sampler=path` or the training options of `learning.train_on_target`: `train`,
        `model_config`, `warmup_steps`, and `save_to`).

    Notes
    -----
    `learned` trains, at the first warmup iteration, on the chain-vectorized `PyroTarget` of the
    same model and arguments (so the model must vectorize, or pass `sampler=path`); the following
    chains of the same run reuse the trained sampler, available as `train_result`. Each chain then
    starts from a random one of the training's bootstrap chains, which training has brought to the
    typical set, instead of Pyro's initial point, unless the user gave `initial_params`.

    A model with a subsampled plate is refused: its potential is a noisy estimate, and an MH
    kernel on a noisy potential does not leave the posterior invariant.

    `sampler` is the kernel of the current (after the run: the last) chain run in this process,
    wrapped in `StepSizeAdaptation` when it adapts. `diagnostics()` gives Pyro's `divergences` (draw
    indices) and `acceptance rate`, the final `step size`, and per-draw `sample_stats`
    (acceptance_rate, is_accepted, diverging, energy, lp, step_size) that
    `entropy_mcmc.pyro.from_pyro` adds to ArviZ's `sample_stats`.
    """

    def __init__(self, model: Callable, kernel: KernelChoice = "mala", *, adapt_step_size: Optional[bool] = None,
                 target_accept: Optional[float] = None, adapt_mass_matrix: Optional[bool] = None,
                 find_step_size: bool = True, step_size_jitter: float = 0.0, transforms: Optional[Dict] = None,
                 max_plate_nesting: Optional[int] = None, jit_compile: bool = False,
                 ignore_jit_warnings: bool = False, jit_options: Optional[Dict] = None,
                 init_strategy: Callable = init_to_uniform, **kernel_options):
        if model is None or not callable(model):
            raise ValueError("PyroKernel needs a Pyro model (a callable)")
        if isinstance(kernel, str) and kernel not in kernel_names():
            raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(kernel_names())} or a callable")
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
        self._user_initial_params = None
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
    def initial_params(self, params):  # Pyro's MCMC(initial_params=...) and users set it; setup does not
        self._initial_params = params
        self._user_initial_params = params

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
        _refuse_subsampling(self.model, args, kwargs)
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
        self._initial_params = self._user_initial_params

    def _build(self, params: Dict[str, torch.Tensor]) -> None:
        """The kernel stack for this chain (`build_kernel`; trained first, for `learned`) and its first state."""
        if isinstance(self.kernel_spec, str):
            spec = get_kernel_spec(self.kernel_spec)
            learned = spec.capabilities.trainable  # trained on this model at setup
            options = self._learned_options() if learned else dict(self.kernel_options)
        else:  # a callable: adapted like a registry kernel, with HMC's target acceptance unless it declares one
            built = self.kernel_spec(self.target, **self.kernel_options)
            if not isinstance(built, TransitionKernel):
                raise TypeError(f"the kernel callable must return an entropy_mcmc TransitionKernel, "
                                f"got {type(built).__name__}")
            spec = KernelSpec(lambda target: built, step_size=None,
                              target_accept=float(getattr(built.base, "default_target_accept", 0.8)),
                              adapts_mass="diag" if hasattr(built.base, "inv_mass") else False)
            options, learned = {}, False
        has_own_step = "step_size" in self.kernel_options
        adapt = spec.adapts_step_size if self.adapt_step_size is None else self.adapt_step_size
        spec = dataclasses.replace(spec, adapts_step_size=adapt)
        mass = self.adapt_mass_matrix
        warmup_spec = get_kernel_spec(spec.warmup_kernel) if spec.warmup_kernel else spec
        if mass is None and warmup_spec.adapts_mass == "dense":
            # a Pyro chain is one chain of ours: its windows hold few draws (150 warmup steps: 25 in the first),
            # too few for d (d + 1) / 2 covariances, enough for d variances (Stan's default)
            mass = "diag"
        # a kernel with a warmup kernel (learned) hands over after a warmup run by that kernel, adapted
        warm = adapt or spec.warmup_kernel is not None
        kernel = build_kernel(spec, self.target, num_warmup=self._warmup_steps if warm else 0,
                              target_accept=self.target_accept, adapt_mass=mass,
                              jitter=self.step_size_jitter, **options)
        if learned:
            self.train_result = getattr(kernel.base, "train_result", self.train_result)
        seed = int(torch.randint(0, 2 ** 62, ()))  # from torch's global generator: pyro.set_rng_seed applies
        position = self.layout.flatten(params)[None]
        buffer = self._trained[1].extra.get("buffer") if learned and self._trained is not None else None
        if buffer is not None and "sampler" not in self.kernel_options and self._user_initial_params is None:
            # start where training left its bootstrap chains (the typical set), not at Pyro's initial point
            row = int(torch.randint(0, buffer.shape[0], ()))
            position = buffer[row:row + 1].reshape(position.shape).to(position)
        kernel.reseed(seed, position.device)
        state = kernel.init(position)
        base = kernel.base
        if getattr(base, "step_size", None) is not None and self.find_step_size and not has_own_step and not learned:
            base.step_size = find_reasonable_step_size(base, state)
        self._target_accept = getattr(kernel, "target_accept", self.target_accept)
        kernel.start_warmup(self._warmup_steps)
        if self._warmup_steps == 0:
            kernel.end_warmup()
        self.sampler, self._state = kernel, state

    def _learned_options(self) -> Dict:
        """The registry's `learned` options: a sampler loaded (`sampler=`), reused from an earlier chain of this
        run, or trained now on the chain-vectorized target of the model."""
        from .target import PyroTarget

        options = dict(self.kernel_options)
        if options.get("sampler") is not None:
            return options
        # Pyro's MCMC.run hands every chain of one run the same argument objects
        key = (tuple(id(a) for a in self._model_args),
               tuple(sorted((k, id(v)) for k, v in self._model_kwargs.items())))
        if self._trained is not None and self._trained[0] == key:
            options["sampler"] = self._trained[1]
            return {k: v for k, v in options.items() if k in ("sampler", "step_size", "mixture_share")}
        try:
            train_target = PyroTarget(self.model, self._model_args, self._model_kwargs, vectorize=True,
                                      transforms=self._user_transforms, max_plate_nesting=self._max_plate_nesting,
                                      jit_compile=self._jit_compile)
        except ValueError as e:
            raise ValueError(f"kernel='learned' trains on the chain-vectorized target of the model, which failed: {e} "
                             "Alternatively pass sampler=path with a sampler trained elsewhere.") from e
        from ..learning import train_on_target

        seed = options.pop("seed", int(torch.randint(0, 2 ** 31, ())))
        train_keys = ("train", "model_config", "warmup_steps", "progress")
        result = train_on_target(train_target, seed=seed, **{k: options.pop(k) for k in train_keys if k in options})
        save_to = options.pop("save_to", None)
        if save_to is not None:
            result.save(save_to)
        self.train_result = result
        self._trained = (key, result)
        return {**options, "sampler": result}

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
               "step_size": float(torch.as_tensor(info.step_size).reshape(-1)[0])}
        for k, v in info.extras.items():  # the kernel's own statistics (NUTS: tree_depth, n_steps)
            rec.setdefault(k, v[0].item())
        for k, v in rec.items():
            self._stats.setdefault(k, []).append(v)

    @property
    def step_size(self) -> float:
        """The kernel's step size; for a kernel made of others (learned: a MALA warmup, then a mixture), the
        step size of the last draw."""
        s = getattr(self.sampler, "step_size", None) if self.sampler is not None else None
        if s is None and self._stats.get("step_size"):
            s = self._stats["step_size"][-1]
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


def _refuse_subsampling(model: Callable, args, kwargs) -> None:
    """ValueError when the model subsamples a plate: its potential is then noisy and MH is not exact."""
    import pyro.poutine as poutine
    from pyro.poutine.subsample_messenger import _Subsample

    trace = poutine.trace(model).get_trace(*args, **kwargs)
    for name, site in trace.nodes.items():
        fn = site.get("fn")
        if site.get("type") == "sample" and isinstance(fn, _Subsample) and fn.subsample_size is not None \
                and fn.subsample_size < fn.size:
            raise ValueError(f"plate {name!r} subsamples {fn.subsample_size} of {fn.size} items: the potential is then "
                             "a noisy estimate and a Metropolis-Hastings kernel on it does not leave the posterior "
                             "invariant; use the full plate (subsample_size=None)")

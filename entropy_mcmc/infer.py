"""A NumPyro-style front door: `MCMC(HMC(potential_fn=f), num_warmup=..., num_samples=...).run(seed)`.

    from entropy_mcmc import MCMC, HMC                  # numpyro: from numpyro.infer import MCMC, HMC
    mcmc = MCMC(HMC(model), num_warmup=500, num_samples=1000, num_chains=4)
    mcmc.run(0, x, y=y)                                 # numpyro: mcmc.run(jax.random.PRNGKey(0), x, y=y)
    mcmc.print_summary(prob=0.9)
    samples = mcmc.get_samples()                        # {site: [chains * samples, *site_shape]}

What differs from `numpyro.infer.MCMC`:
- the seed is an int, not a PRNG key;
- chains always run vectorized (NumPyro's `chain_method="vectorized"`), as the leading batch
  dimension of one position tensor; under `torchrun` they are split across processes as
  `samplers.run_chains` splits them (rank 0 gets every chain);
- a `potential_fn` is vectorized too: it maps `[chains, *event]` to `[chains]` potential energies;
- HMC takes a fixed `num_steps` (no `trajectory_length`, no NUTS), and a `model` is a Pyro model.

Kernels are descriptions (a registry name and its options); `MCMC.run` builds the target, then the
kernel through `samplers.build_kernel`, the one place for defaults and wrapper order.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import torch

from .samplers import build_kernel, get_kernel_spec, run_chains, spawn_seeds
from .samplers.runner import SampleResult
from .targets.base import LogDensity, Target

__all__ = ["MCMC", "Kernel", "HMC", "MALA", "RWM"]

# NumPyro's names for the per-draw statistics, and the runner's (where the runner has no stat of that name:
# `potential_energy` is recorded as such where `energy` is a Hamiltonian (HMC), as `energy` elsewhere)
_FIELD_ALIASES = {"accept_prob": "acceptance_prob", "potential_energy": "energy",
                  "adapt_state.step_size": "step_size"}


def _stat_name(field: str, stats: Mapping[str, torch.Tensor]) -> str:
    return field if field in stats else _FIELD_ALIASES.get(field, field)


class Kernel:
    """A kernel of the registry by name (built-in, plugged in, or `learned`), on a model or a potential.

    Args:
        name: a registry name (`entropy-mcmc list` shows them).
        model: a Pyro model; `MCMC.run` gives it its arguments. Exactly one of `model` and `potential_fn`.
        potential_fn: U(x) = -log p(x) + const, *vectorized over chains*: it takes positions
            `[chains, *event]` and returns a tensor of shape `[chains]` (NumPyro's `potential_fn` takes one
            point; wrap such a function with `torch.vmap`). Gradients come from autograd.
        event_shape: the shape of one position of `potential_fn` (an int or a tuple); needed when
            `MCMC.run` gets no `init_params` to take it from.
        options: what `samplers.build_kernel` takes: `step_size`, `target_accept`, `adapt_mass`
            (False, "diag", "dense"), `jitter`, `per_chain`, and the kernel's own keywords
            (`num_steps` for HMC, `sampler` for `learned`). None or absent: the registry's default.
    """

    def __init__(self, name: str, model: Optional[Callable] = None, potential_fn: Optional[Callable] = None, *,
                 event_shape: Union[None, int, Sequence[int]] = None, **options):
        if (model is None) == (potential_fn is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of model= (a Pyro model) and potential_fn= "
                             "(a vectorized potential energy)")
        for what, fn in (("model", model), ("potential_fn", potential_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be a callable, got {type(fn).__name__}")
        if model is not None and event_shape is not None:
            raise ValueError("event_shape applies to a potential_fn; a model's sites give its own layout")
        get_kernel_spec(name)  # an unknown name fails here, listing the known ones
        self.name = name
        self.model = model
        self.potential_fn = potential_fn
        self.event_shape = None if event_shape is None else torch.Size(
            (event_shape,) if isinstance(event_shape, int) else event_shape)
        self.options = {k: v for k, v in options.items() if v is not None}

    def target(self, model_args: Sequence = (), model_kwargs: Optional[Mapping] = None,
               event_shape: Optional[Sequence[int]] = None) -> Target:
        """The target this kernel samples: `PyroTarget(model, model_args, model_kwargs)` for a model, a
        `LogDensity` of minus the potential for a `potential_fn` (on `event_shape`, or the kernel's)."""
        if self.model is not None:
            from .pyro.target import PyroTarget

            return PyroTarget(self.model, model_args, model_kwargs)
        if model_args or model_kwargs:
            raise ValueError("model arguments were given to run(), but this kernel samples a potential_fn, not a "
                             "model")
        shape = self.event_shape if event_shape is None else torch.Size(event_shape)
        if shape is None:
            raise ValueError("the shape of a position of potential_fn is unknown: give init_params "
                             "[chains, *event] to run(), or event_shape= to the kernel")
        if self.event_shape is not None and shape != self.event_shape:
            raise ValueError(f"init_params have event shape {tuple(shape)}, the kernel's event_shape is "
                             f"{tuple(self.event_shape)}")
        name = getattr(self.potential_fn, "__name__", "<lambda>")
        return LogDensity(_negated(self.potential_fn, shape), shape, "potential_fn" if name == "<lambda>" else name)

    def build(self, target: Target, num_warmup: int):
        """The kernel stack on `target` (`samplers.build_kernel`)."""
        return build_kernel(self.name, target, num_warmup=num_warmup, **self.options)

    def __repr__(self) -> str:
        on = f"model={getattr(self.model, '__name__', self.model)}" if self.model is not None else \
            f"potential_fn={getattr(self.potential_fn, '__name__', self.potential_fn)}"
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}, {on}{opts})"


def _negated(potential_fn: Callable, event_shape: torch.Size) -> Callable[[torch.Tensor], torch.Tensor]:
    """log p = -U, with an error that names potential_fn's contract when U has the wrong shape."""
    event = ", ".join(str(s) for s in event_shape)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        u = potential_fn(x)
        if not isinstance(u, torch.Tensor) or u.shape != x.shape[:1]:
            got = list(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
            hint = (" It returned one number: entropy_mcmc's potential_fn is vectorized over chains (NumPyro's "
                    "takes one point); wrap a one-point function as torch.vmap(f)."
                    if isinstance(u, torch.Tensor) and u.dim() == 0 else " Sum over the event dimensions.")
            raise ValueError(f"potential_fn must map positions [chains, {event}] = {list(x.shape)} to potential "
                             f"energies of shape [chains] = [{x.shape[0]}], got {got}.{hint}")
        return -u

    return log_prob


class _NamedKernel(Kernel):
    """A registry kernel with NumPyro's keywords for step-size and mass-matrix adaptation."""

    _name = ""
    _has_mass = True

    def __init__(self, model: Optional[Callable] = None, potential_fn: Optional[Callable] = None, *,
                 step_size: Optional[float] = None, target_accept_prob: Optional[float] = None,
                 adapt_step_size: bool = True, adapt_mass_matrix: bool = True, dense_mass: Optional[bool] = None,
                 event_shape: Union[None, int, Sequence[int]] = None, **options):
        for key in ("adapt_mass", "target_accept"):
            if key in options:
                raise TypeError(f"{type(self).__name__} takes NumPyro's keywords: use adapt_mass_matrix/dense_mass "
                                f"and target_accept_prob instead of {key}")
        wants_mass = bool(adapt_mass_matrix) and self._has_mass
        # dense_mass None: the registry's choice (diagonal for HMC, dense for MALA)
        mass = (None if dense_mass is None else "dense" if dense_mass else "diag") if wants_mass else False
        if not adapt_step_size and wants_mass:
            raise ValueError("adapting the mass matrix with a fixed step size is not supported (warmup adapts both "
                             "or neither): pass adapt_mass_matrix=False with adapt_step_size=False")
        super().__init__(self._name, model, potential_fn, event_shape=event_shape, step_size=step_size,
                         target_accept=target_accept_prob, adapt_mass=mass, **options)
        self.adapt_step_size = bool(adapt_step_size)

    def build(self, target: Target, num_warmup: int):
        return build_kernel(self.name, target, num_warmup=num_warmup if self.adapt_step_size else 0, **self.options)


class HMC(_NamedKernel):
    """Hamiltonian Monte Carlo with `num_steps` leapfrog steps (NumPyro's `HMC` without `trajectory_length`).

    `model` (a Pyro model) or `potential_fn` (vectorized over chains: `[chains, *event]` -> `[chains]`,
    the potential energy -log p), exactly one. During warmup the step size adapts by dual averaging to
    `target_accept_prob`, and the mass matrix (diagonal; dense with `dense_mass=True`) in Stan's windows.
    `step_size=None` and `dense_mass=None` take the registry's defaults; other `options` go to `build_kernel`
    (`jitter`: the step-size jitter after warmup, 0.5 by default for HMC; `per_chain`).
    """

    _name = "hmc"

    def __init__(self, model: Optional[Callable] = None, potential_fn: Optional[Callable] = None, *,
                 step_size: Optional[float] = None, num_steps: int = 10, target_accept_prob: float = 0.8,
                 adapt_step_size: bool = True, adapt_mass_matrix: bool = True, dense_mass: Optional[bool] = None,
                 event_shape: Union[None, int, Sequence[int]] = None, **options):
        super().__init__(model, potential_fn, step_size=step_size, target_accept_prob=target_accept_prob,
                         adapt_step_size=adapt_step_size, adapt_mass_matrix=adapt_mass_matrix, dense_mass=dense_mass,
                         event_shape=event_shape, num_steps=num_steps, **options)


class MALA(_NamedKernel):
    """Metropolis-adjusted Langevin; keywords as `HMC` (no `num_steps`). By default (the registry's) it aims at
    an acceptance of 0.574 and adapts a dense mass matrix."""

    _name = "mala"


class RWM(_NamedKernel):
    """Random-walk Metropolis; keywords as `HMC` without a mass matrix. `target_accept_prob=None`: 0.234."""

    _name = "rwm"
    _has_mass = False

    def __init__(self, model: Optional[Callable] = None, potential_fn: Optional[Callable] = None, *,
                 step_size: Optional[float] = None, target_accept_prob: Optional[float] = None,
                 adapt_step_size: bool = True, event_shape: Union[None, int, Sequence[int]] = None, **options):
        super().__init__(model, potential_fn, step_size=step_size, target_accept_prob=target_accept_prob,
                         adapt_step_size=adapt_step_size, adapt_mass_matrix=False, event_shape=event_shape, **options)


class MCMC:
    """Runs a kernel's chains, vectorized, and reports as `numpyro.infer.MCMC` does.

    Args:
        kernel: `HMC`, `MALA`, `RWM` or `Kernel(name, ...)`.
        num_warmup: adaptation steps, discarded.
        num_samples: steps after warmup; every `thinning`-th is kept (`num_samples // thinning` draws).
        num_chains: chains, run as one batch (NumPyro's `chain_method="vectorized"`; the other values are
            accepted and mean the same here).
        progress_bar: a tqdm bar on a terminal.
    """

    def __init__(self, kernel: Kernel, *, num_warmup: int, num_samples: int, num_chains: int = 1,
                 thinning: int = 1, progress_bar: bool = True, chain_method: str = "vectorized"):
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be an entropy_mcmc.infer kernel (HMC, MALA, RWM, Kernel), got "
                            f"{type(kernel).__name__}")
        for name, v, lo in (("num_warmup", num_warmup, 0), ("num_samples", num_samples, 1),
                            ("num_chains", num_chains, 1), ("thinning", thinning, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if num_samples < thinning:
            raise ValueError(f"num_samples={num_samples} keeps no draw at thinning={thinning}")
        if chain_method not in ("vectorized", "parallel", "sequential"):
            raise ValueError(f"chain_method must be 'vectorized', 'parallel' or 'sequential', got {chain_method!r}")
        self.kernel = kernel
        self.num_warmup, self.num_samples, self.num_chains = num_warmup, num_samples, num_chains
        self.thinning, self.progress_bar = thinning, progress_bar
        self.result: Optional[SampleResult] = None  # the runner's record of the last run
        self.target: Optional[Target] = None
        self._extra_fields: Sequence[str] = ()

    def run(self, seed: int, *model_args, init_params=None, extra_fields: Sequence[str] = (), **model_kwargs) -> None:
        """Warm up and sample `num_chains` chains from `seed` (an int: NumPyro's `rng_key`).

        Args:
            model_args, model_kwargs: the model's arguments (for a `model` kernel).
            init_params: where the chains start. For a `potential_fn`, a tensor `[num_chains, *event]` (or
                `[*event]`, the same start for every chain). For a model, a dict `{site: value}` of
                *unconstrained* values (as NumPyro and Pyro take them), each `[num_chains, *shape]` or
                `[*shape]`. Default: `Target.initial_positions` (N(0, 0.1^2)) for a potential, Pyro's
                uniform in [-2, 2] on the unconstrained space for a model.
            extra_fields: the per-draw statistics `get_extra_fields` returns (default: all of them);
                NumPyro's names `accept_prob`, `potential_energy`, `adapt_state.step_size` are understood.
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int (entropy_mcmc's counterpart of NumPyro's rng_key), got "
                            f"{type(seed).__name__}")
        init, event_shape = None, None
        if self.kernel.potential_fn is not None and init_params is not None:
            init = torch.as_tensor(init_params)
            if not init.is_floating_point():
                init = init.to(torch.get_default_dtype())
            if self.kernel.event_shape is not None and init.shape == self.kernel.event_shape:
                init = init.expand(self.num_chains, *init.shape)
            event_shape = init.shape[1:]
        target = self.kernel.target(model_args, model_kwargs, event_shape)
        init_seed = spawn_seeds(seed, 2)[0]  # the stream run_chains uses for initial positions
        if self.kernel.model is not None:
            init = self._model_init(target, init_params, init_seed)
        elif init is not None and (init.dim() < 1 or init.shape[0] != self.num_chains):
            raise ValueError(f"init_params must have shape [num_chains, *event] = [{self.num_chains}, ...], "
                             f"got {list(init.shape)}")
        kernel = self.kernel.build(target, self.num_warmup)
        result = run_chains(target, kernel, chains=self.num_chains, num_warmup=self.num_warmup,
                            num_draws=self.num_samples // self.thinning, thin=self.thinning, seed=seed,
                            dtype=torch.get_default_dtype(), threads=0, progress=self.progress_bar,
                            init=None if init is None else init.contiguous())
        self.result, self.target = result, target
        missing = [f for f in extra_fields if _stat_name(f, result.stats) not in result.stats]
        self._extra_fields = tuple(extra_fields)
        if missing:
            raise ValueError(f"extra_fields {missing} were not recorded; this kernel records "
                             f"{sorted(result.stats)}")

    def _model_init(self, target, init_params, init_seed: int) -> torch.Tensor:
        if init_params is None:
            gen = torch.Generator().manual_seed(int(init_seed))
            return target.initial_position(self.num_chains, generator=gen)
        if not isinstance(init_params, Mapping):
            raise TypeError(f"init_params for a model is a dict of unconstrained site values, got "
                            f"{type(init_params).__name__}")
        unknown = sorted(set(init_params) - set(target.layout.names))
        if unknown:
            raise ValueError(f"init_params name {unknown}, which are not latent sites of the model "
                             f"{list(target.layout.names)}")
        values = {}
        for name in target.layout.names:
            if name not in init_params:
                raise ValueError(f"init_params lack the latent site {name!r} (sites: {list(target.layout.names)})")
            v = torch.as_tensor(init_params[name], dtype=target.dtype)
            shape = target.layout.shapes[name]
            if v.shape == shape:
                v = v.expand(self.num_chains, *shape)
            if v.shape != (self.num_chains, *shape):
                raise ValueError(f"init_params[{name!r}] must have shape {list(shape)} or [num_chains, *shape] = "
                                 f"{[self.num_chains, *shape]}, got {list(v.shape)}")
            values[name] = v
        return target.flatten(values)

    # -- results ------------------------------------------------------------------------------
    def _done(self) -> SampleResult:
        if self.result is None:
            raise RuntimeError("no samples yet: call run() first")
        return self.result

    def get_samples(self, group_by_chain: bool = False) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """The draws: a tensor for a `potential_fn`, a dict of constrained site values for a model; each
        `[num_chains * draws, ...]`, or `[num_chains, draws, ...]` with `group_by_chain=True`."""
        draws = self._done().draws
        if self.kernel.model is not None:
            out = self.target.constrain(draws)
            return out if group_by_chain else {k: v.reshape(-1, *v.shape[2:]) for k, v in out.items()}
        return draws if group_by_chain else draws.reshape(-1, *draws.shape[2:])

    def get_extra_fields(self, group_by_chain: bool = False) -> Dict[str, torch.Tensor]:
        """Per-draw statistics: `acceptance_prob`, `accepted`, `diverging`, `energy` (the Hamiltonian for HMC,
        with `potential_energy` beside it; the potential energy for the others), `step_size` (as used),
        and each kernel extra. Only those named in `run(extra_fields=...)` when any were; each
        `[num_chains * draws]`, or `[num_chains, draws]` with `group_by_chain=True`."""
        stats = self._done().stats
        names = {f: _stat_name(f, stats) for f in self._extra_fields} or {k: k for k in stats}
        out = {f: stats[k] for f, k in names.items()}
        return out if group_by_chain else {k: v.reshape(-1, *v.shape[2:]) for k, v in out.items()}

    @property
    def last_state(self):
        """The kernel's state after the last step (every chain of this process)."""
        return self._done().final_state

    @property
    def num_divergences(self) -> int:
        """Divergent transitions over every sampling step, thinned or not."""
        return self._done().num_divergences

    def to_arviz(self):
        """ArviZ `InferenceData`: `posterior` (per site, constrained, for a model; `x` for a potential) and
        `sample_stats` (acceptance_rate, diverging, energy, lp, step_size, ...)."""
        result = self._done()
        if self.kernel.model is not None:
            return self.target.to_inference_data(result)
        return result.to_arviz()

    def summary(self, prob: float = 0.9, **kwargs):
        """The ArviZ summary table (pandas DataFrame) with `hdi_prob=prob`."""
        import arviz as az

        if not 0.0 < prob < 1.0:
            raise ValueError(f"prob must lie in (0, 1), got {prob!r}")
        return az.summary(self.to_arviz(), hdi_prob=prob, **kwargs)

    def print_summary(self, prob: float = 0.9, **kwargs) -> None:
        """Print the ArviZ summary (mean, sd, `prob` HDI, MCSE, ESS, R-hat) and the number of divergences."""
        table = self.summary(prob, **kwargs)
        print(table.to_string())
        print(f"\nNumber of divergences: {self.num_divergences}")

    def __repr__(self) -> str:
        return (f"MCMC({self.kernel!r}, num_warmup={self.num_warmup}, num_samples={self.num_samples}, "
                f"num_chains={self.num_chains}, thinning={self.thinning})")

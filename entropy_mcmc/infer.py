"""A NumPyro-style front door: `MCMC(NUTS(model), num_warmup=..., num_samples=...).run(seed, *args)`::

    from entropy_mcmc import MCMC, NUTS                 # numpyro: from numpyro.infer import MCMC, NUTS
    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=1000, num_chains=4)
    mcmc.run(0, x, y=y)                                 # numpyro: mcmc.run(jax.random.PRNGKey(0), x, y=y)
    mcmc.print_summary(prob=0.9)
    samples = mcmc.get_samples()                        # {site: [chains * samples, *site_shape]}

What differs from `numpyro.infer.MCMC`:

- the seed is an int, not a PRNG key (`last_state.rng_key` is an int too);
- `chain_method="auto"` (the default) evaluates all chains in one model run where that is verified to
  equal a chain-by-chain evaluation (a chain plate, else `torch.func.vmap`), and chain by chain
  otherwise, with one warning; "vectorized" insists on one run, "sequential" evaluates chain by chain,
  "parallel" splits the chains over processes (torch.distributed, gloo) as NumPyro splits them over
  devices. Under `torchrun` the chains are split across the launched processes;
- a model is a Pyro model; HMC takes a fixed `num_steps` (no `trajectory_length`);
- NUTS has no `find_heuristic_step_size`, `trajectory_length` or `kinetic_fn`.

Kernels are descriptions (a registry name and its options); `MCMC.run` builds the target, then the
kernel through `samplers.build_kernel`, the one place for defaults and wrapper order.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch

from .samplers import build_kernel, get_kernel_spec, run_chains, spawn_seeds
from .samplers.runner import SampleResult
from .targets.base import Target
from .targets.potential import PotentialFn

__all__ = ["MCMC", "MCMCState", "Kernel", "HMC", "NUTS", "MALA", "RWM", "CHAIN_METHODS"]

CHAIN_METHODS = ("auto", "vectorized", "sequential", "parallel")

# NumPyro's names for the per-draw statistics, and the runner's (where the runner has no stat of that name:
# `potential_energy` is recorded as such where `energy` is a Hamiltonian (HMC), as `energy` elsewhere)
_FIELD_ALIASES = {"accept_prob": "acceptance_prob", "potential_energy": "energy",
                  "adapt_state.step_size": "step_size"}


def _stat_name(field: str, stats: Mapping[str, torch.Tensor]) -> str:
    return field if field in stats else _FIELD_ALIASES.get(field, field)


class Kernel:
    """A kernel of the registry by name (built-in, plugged in, or `learned`), on a model or a potential.

    Parameters
    ----------
    name
        A registry name (`entropy-mcmc list` shows them).
    model
        A Pyro model; `MCMC.run` gives it its arguments. Exactly one of `model` and `potential_fn`.
    potential_fn
        U(x) = -log p(x) + const, as NumPyro takes it: a function of one point (`[*event]`
        -> scalar) or of a dict of named tensors (then `init_params` is a dict); a function vectorized over
        chains (`[chains, *event]` -> `[chains]`) is recognized and called once per evaluation.
        Gradients come from autograd.
    event_shape
        The shape of one position of `potential_fn` (an int or a tuple); needed when
        `MCMC.run` gets no `init_params` to take it from.
    options
        What `samplers.build_kernel` takes: `step_size`, `target_accept`, `adapt_mass`
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

    def target(self, model_args: Sequence = (), model_kwargs: Optional[Mapping] = None, init=None,
               chain_method: str = "auto") -> Target:
        """The target this kernel samples: `PyroTarget(model, model_args, model_kwargs)` for a model, a
        `PotentialFn` for a `potential_fn` at `init` (a tensor `[chains, *event]` or a dict of them)."""
        method = {"vectorized": True, "sequential": False}.get(chain_method, "auto")
        if self.model is not None:
            from .pyro.target import PyroTarget

            return PyroTarget(self.model, model_args, model_kwargs, vectorize=method)
        if model_args or model_kwargs:
            raise ValueError("model arguments were given to run(), but this kernel samples a potential_fn, not a "
                             "model")
        if init is None:
            raise ValueError("the shape of a position of potential_fn is unknown: give init_params "
                             "[chains, *event] to run(), or event_shape= to the kernel")
        if isinstance(init, torch.Tensor) and self.event_shape is not None and init.shape[1:] != self.event_shape:
            raise ValueError(f"init_params have event shape {tuple(init.shape[1:])}, the kernel's event_shape is "
                             f"{tuple(self.event_shape)}")
        return PotentialFn(self.potential_fn, init, {True: "vectorized", False: "sequential"}.get(method, "auto"))

    def build(self, target: Target, num_warmup: int):
        """The kernel stack on `target` (`samplers.build_kernel`)."""
        return build_kernel(self.name, target, num_warmup=num_warmup, **self.options)

    def __repr__(self) -> str:
        on = f"model={getattr(self.model, '__name__', self.model)}" if self.model is not None else \
            f"potential_fn={getattr(self.potential_fn, '__name__', self.potential_fn)}"
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}, {on}{opts})"


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
        # dense_mass None: the registry's choice (auto for HMC and NUTS, dense for MALA)
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

    `model` (a Pyro model) or `potential_fn` (the potential energy -log p of one point, or vectorized over
    chains), exactly one. During warmup the step size adapts by dual averaging to
    `target_accept_prob`, and the mass matrix in Stan's windows (dense or diagonal as `adapt_mass="auto"` chooses;
    `dense_mass=True` or False forces one).
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


class NUTS(_NamedKernel):
    """The No-U-Turn sampler (multinomial, generalized U-turn criterion; `samplers.NUTS`), NumPyro's `NUTS`
    keywords: `max_tree_depth` (at most 2^D - 1 leapfrog steps per draw), `target_accept_prob` (0.8),
    `adapt_mass_matrix`/`dense_mass` (by default dense or diagonal from Stan's windows, as `adapt_mass="auto"`
    chooses). The chains run as one batch: a chain whose tree is finished waits for the deepest one of the draw."""

    _name = "nuts"

    def __init__(self, model: Optional[Callable] = None, potential_fn: Optional[Callable] = None, *,
                 step_size: Optional[float] = None, max_tree_depth: int = 10, target_accept_prob: float = 0.8,
                 adapt_step_size: bool = True, adapt_mass_matrix: bool = True, dense_mass: Optional[bool] = None,
                 event_shape: Union[None, int, Sequence[int]] = None, **options):
        super().__init__(model, potential_fn, step_size=step_size, target_accept_prob=target_accept_prob,
                         adapt_step_size=adapt_step_size, adapt_mass_matrix=adapt_mass_matrix, dense_mass=dense_mass,
                         event_shape=event_shape, max_tree_depth=max_tree_depth, **options)


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


@dataclasses.dataclass
class MCMCState:
    """Where a run ended: `last_state`, and what `post_warmup_state` takes to continue without adapting again.

    Attributes
    ----------
    z
        The chains' positions in the kernel's own layout: unconstrained site values `{site: [chains, ...]}`
        for a model (NumPyro's `HMCState.z`), `[chains, *event]` or a dict for a `potential_fn`.
    potential_energy
        `[chains]`.
    rng_key
        The seed `run` takes to continue (NumPyro: `mcmc.run(mcmc.post_warmup_state.rng_key)`).
    kernel, state, target
        The adapted kernel stack, its state and the target it samples.
    """

    z: Any
    potential_energy: torch.Tensor
    rng_key: int
    kernel: Any = dataclasses.field(repr=False)
    state: Any = dataclasses.field(repr=False)
    target: Target = dataclasses.field(repr=False)


class MCMC:
    """Runs a kernel's chains and reports as `numpyro.infer.MCMC` does.

    Parameters
    ----------
    kernel
        `NUTS`, `HMC`, `MALA`, `RWM` or `Kernel(name, ...)`.
    num_warmup
        Adaptation steps, discarded.
    num_samples
        Steps after warmup; every `thinning`-th is kept (`num_samples // thinning` draws).
    num_chains
        Chains, run as one batch.
    thinning
        Keep every `thinning`-th draw.
    progress_bar
        A tqdm bar on a terminal.
    chain_method
        "auto" (default), "vectorized", "sequential" or "parallel" (module docstring).

    Attributes
    ----------
    post_warmup_state
        Set (by `warmup()`, or by the user to `last_state`) to make the next `run` start
        there with the adapted kernel and skip warmup, as NumPyro's does.
    """

    def __init__(self, kernel: Kernel, *, num_warmup: int, num_samples: int, num_chains: int = 1,
                 thinning: int = 1, progress_bar: bool = True, chain_method: str = "auto"):
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be an entropy_mcmc.infer kernel (NUTS, HMC, MALA, RWM, Kernel), got "
                            f"{type(kernel).__name__}")
        for name, v, lo in (("num_warmup", num_warmup, 0), ("num_samples", num_samples, 1),
                            ("num_chains", num_chains, 1), ("thinning", thinning, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if num_samples < thinning:
            raise ValueError(f"num_samples={num_samples} keeps no draw at thinning={thinning}")
        if chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {', '.join(map(repr, CHAIN_METHODS))}, got {chain_method!r}")
        self.kernel = kernel
        self.num_warmup, self.num_samples, self.num_chains = num_warmup, num_samples, num_chains
        self.thinning, self.progress_bar, self.chain_method = thinning, progress_bar, chain_method
        self.result: Optional[SampleResult] = None  # the runner's record of the last run
        self.target: Optional[Target] = None
        self.post_warmup_state: Optional[MCMCState] = None
        self._last_state: Optional[MCMCState] = None
        self._extra_fields: Sequence[str] = ()
        self._args: tuple = ((), {})
        self._sites = None  # deterministic values and log-likelihoods of the last run, computed on demand

    # -- running ------------------------------------------------------------------------------
    def warmup(self, seed: int, *model_args, extra_fields: Sequence[str] = (), collect_warmup: bool = False,
               init_params=None, **model_kwargs) -> None:
        """Run the `num_warmup` adaptation steps alone and keep where they end in `post_warmup_state`, so the
        next `run` samples from there without adapting again. `collect_warmup=True` keeps the warmup draws
        for `get_samples` and `get_extra_fields`."""
        self._run(seed, model_args, model_kwargs, init_params, extra_fields, warmup_only=True,
                  collect_warmup=collect_warmup)
        self.post_warmup_state = self._last_state

    def run(self, seed: int, *model_args, init_params=None, extra_fields: Sequence[str] = (), **model_kwargs) -> None:
        """Warm up and sample `num_chains` chains from `seed` (an int: NumPyro's `rng_key`); with
        `post_warmup_state` set, sample from there with its adapted kernel and no warmup.

        Parameters
        ----------
        model_args, model_kwargs
            The model's arguments (for a `model` kernel).
        init_params
            Where the chains start. For a `potential_fn`, a tensor `[num_chains, *event]` (or
            `[*event]`, the same start for every chain) or a dict of `[num_chains, *shape]` tensors for a
            potential of a dict. For a model, a dict `{site: value}` of *unconstrained* values (as NumPyro
            and Pyro take them), each `[num_chains, *shape]` or `[*shape]`. Default: N(0, 0.1^2) for a
            potential; for a model, Pyro's uniform in [-2, 2] on the unconstrained space, the lowest-energy of
            10 draws per chain.
        extra_fields
            The per-draw statistics `get_extra_fields` returns (default: all of them);
            NumPyro's names `accept_prob`, `potential_energy`, `adapt_state.step_size` are understood.
        """
        self._run(seed, model_args, model_kwargs, init_params, extra_fields)

    def _run(self, seed, model_args, model_kwargs, init_params, extra_fields, warmup_only=False,
             collect_warmup=False) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int (entropy_mcmc's counterpart of NumPyro's rng_key), got "
                            f"{type(seed).__name__}")
        continued = self.post_warmup_state
        if continued is not None and init_params is not None:
            raise ValueError("init_params were given while post_warmup_state is set: the run continues from that "
                             "state; set post_warmup_state = None to start afresh")
        draws = 0 if warmup_only else self.num_samples // self.thinning
        if self.chain_method == "parallel" and continued is None:
            from .samplers.parallel import run_in_processes

            result = run_in_processes(_run_in_process, (self, seed, model_args, model_kwargs, init_params, draws,
                                                        collect_warmup), self.num_chains)
            target = self.kernel.target(model_args, model_kwargs, None if self.kernel.model is not None else
                                        _potential_init(self, init_params, spawn_seeds(seed, 2)[0]))
        else:
            result, target = _run_description(self, seed, model_args, model_kwargs, init_params, draws,
                                              collect_warmup)
        if warmup_only and collect_warmup:
            result.samples, result.stats = result.warmup_samples, result.warmup_stats
        self.result, self.target, self._sites = result, target, None
        self._args = (tuple(model_args), dict(model_kwargs))
        state = result.final_state
        self._last_state = None if getattr(state, "position", None) is None else MCMCState(
            z=self._positions(target, state.position), potential_energy=state.energy.detach(),
            rng_key=spawn_seeds(seed, 3)[2], kernel=result.attrs["kernel_object"], state=state, target=target)
        missing = [f for f in extra_fields if _stat_name(f, result.stats) not in result.stats]
        self._extra_fields = tuple(extra_fields)
        if missing:
            raise ValueError(f"extra_fields {missing} were not recorded; this kernel records "
                             f"{sorted(result.stats)}")

    def _positions(self, target: Target, x: torch.Tensor):
        if self.kernel.model is not None:
            return target.unconstrained(x)
        return target.unflatten(x)

    def _init(self, target, init_params, init_seed: int) -> torch.Tensor:
        """Flat initial positions `[num_chains, d]` of a model's unconstrained sites (`_check_finite` checks them)."""
        if init_params is None:
            gen = torch.Generator().manual_seed(int(init_seed))
            return target.initial_position(self.num_chains, generator=gen, candidates=10)
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
            values[name] = _per_chain(name, init_params[name], target.layout.shapes[name], self.num_chains,
                                      target.dtype)
        return target.flatten(values)

    # -- results ------------------------------------------------------------------------------
    def _done(self) -> SampleResult:
        if self.result is None:
            raise RuntimeError("no samples yet: call run() first")
        return self.result

    def _site_draws(self):
        """`pyro.deterministic` values and pointwise log-likelihoods `[chains, draws, ...]` of a model's draws."""
        if self._sites is None:
            self._sites = self.target.site_draws(self._done().draws)
        return self._sites

    def get_samples(self, group_by_chain: bool = False) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """The draws: for a model, a dict of constrained latent site values and `pyro.deterministic` sites; for a
        `potential_fn`, a tensor (or a dict, for a potential of a dict); each `[num_chains * draws, ...]`, or
        `[num_chains, draws, ...]` with `group_by_chain=True`."""
        draws = self._done().draws
        if self.kernel.model is not None:
            out = {**self.target.constrain(draws), **self._site_draws()[0]}
        else:
            out = self.target.unflatten(draws)
        if isinstance(out, torch.Tensor):
            return out if group_by_chain else out.reshape(-1, *out.shape[2:])
        return out if group_by_chain else {k: v.reshape(-1, *v.shape[2:]) for k, v in out.items()}

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
    def last_state(self) -> MCMCState:
        """Where the last run ended (every chain of this process); `mcmc.post_warmup_state = mcmc.last_state`
        makes the next `run` continue from it."""
        self._done()
        if self._last_state is None:
            raise RuntimeError("this run's final state stayed in its worker processes (chain_method='parallel')")
        return self._last_state

    @property
    def num_divergences(self) -> int:
        """Divergent transitions over every sampling step, thinned or not."""
        return self._done().num_divergences

    def to_arviz(self, log_likelihood: bool = True, posterior_predictive: bool = False, seed: int = 0):
        """ArviZ `InferenceData`: `posterior` (constrained latent and deterministic sites for a model; `x`, or the
        dict's names, for a potential) and `sample_stats`; for a model also `observed_data` and, with
        `log_likelihood`, each observed site's pointwise log-likelihood (for `az.loo`, `az.compare`), and
        with `posterior_predictive`, draws of the observed sites given each posterior draw (seeded by `seed`)."""
        import arviz as az

        result = self._done()
        idata = result.to_arviz()
        if self.kernel.model is None:
            if isinstance(self.target.unflatten(result.draws), dict):
                samples = {k: v.detach().cpu().numpy() for k, v in self.get_samples(group_by_chain=True).items()}
                idata = az.InferenceData(posterior=az.from_dict(posterior=samples).posterior,
                                         sample_stats=idata.sample_stats)
            return idata
        samples = {k: v.detach().cpu().numpy() for k, v in self.get_samples(group_by_chain=True).items()}
        groups = {"posterior": samples, "observed_data": {k: v.detach().cpu().numpy()
                                                          for k, v in self.target.observed_values().items()}}
        if log_likelihood:
            groups["log_likelihood"] = {k: v.detach().cpu().numpy() for k, v in self._site_draws()[1].items()}
        if posterior_predictive:
            groups["posterior_predictive"] = {k: v.detach().cpu().numpy()
                                              for k, v in self.posterior_predictive(seed).items()}
        out = az.from_dict(**groups)
        out.add_groups(sample_stats=idata.sample_stats)
        return out

    def posterior_predictive(self, seed: int = 0) -> Dict[str, torch.Tensor]:
        """Draws of the model's observed sites, one per posterior draw, `{site: [chains, draws, ...]}`
        (`pyro.infer.Predictive` on `get_samples()`, the model run once for all draws where it vectorizes)."""
        if self.kernel.model is None:
            raise ValueError("posterior predictive draws need a model; this run sampled a potential_fn")
        from pyro.infer import Predictive

        samples = self.get_samples()
        names = list(self.target.observed_values())
        args, kwargs = self._args
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = Predictive(self.kernel.model, posterior_samples=samples, return_sites=names,
                             parallel=self.target.method == "plate")(*args, **kwargs)
        c = self._done().num_chains
        return {k: v.reshape(c, -1, *v.shape[1:]) for k, v in out.items()}

    def summary(self, prob: float = 0.9, exclude_deterministic: bool = True, **kwargs):
        """The ArviZ summary table (pandas DataFrame) with `hdi_prob=prob`, without the `pyro.deterministic`
        sites unless `exclude_deterministic=False`."""
        import arviz as az

        if not 0.0 < prob < 1.0:
            raise ValueError(f"prob must lie in (0, 1), got {prob!r}")
        idata = self.to_arviz(log_likelihood=False)
        if self.kernel.model is not None and exclude_deterministic and "var_names" not in kwargs:
            kwargs["var_names"] = list(self.target.layout.names)
        return az.summary(idata, hdi_prob=prob, **kwargs)

    def print_summary(self, prob: float = 0.9, exclude_deterministic: bool = True, **kwargs) -> None:
        """Print the ArviZ summary (mean, sd, `prob` HDI, MCSE, ESS, R-hat) and the number of divergences."""
        table = self.summary(prob, exclude_deterministic, **kwargs)
        print(table.to_string())
        print(f"\nNumber of divergences: {self.num_divergences}")

    def __repr__(self) -> str:
        return (f"MCMC({self.kernel!r}, num_warmup={self.num_warmup}, num_samples={self.num_samples}, "
                f"num_chains={self.num_chains}, thinning={self.thinning}, chain_method={self.chain_method!r})")


def _per_chain(name: str, value, shape: torch.Size, chains: int, dtype: torch.dtype) -> torch.Tensor:
    """`value` as `[chains, *shape]`: given so, or as `[*shape]` shared by every chain."""
    v = torch.as_tensor(value, dtype=dtype)
    if v.shape == shape:
        v = v.expand(chains, *shape)
    if v.shape != (chains, *shape):
        raise ValueError(f"init_params[{name!r}] must have shape {list(shape)} or [num_chains, *shape] = "
                         f"{[chains, *shape]}, got {list(v.shape)}")
    return v


def _potential_init(mcmc: MCMC, init_params, init_seed: int):
    """init_params of a potential as `[num_chains, *event]` or a dict of `[num_chains, ...]`; N(0, 0.1^2) by
    default (`Target.initial_positions`)."""
    kernel, chains = mcmc.kernel, mcmc.num_chains
    if init_params is None:
        if kernel.event_shape is None:
            return None
        return Target(kernel.event_shape).initial_positions(chains, init_seed, torch.get_default_dtype())
    if isinstance(init_params, Mapping):
        bad = {k: list(torch.as_tensor(v).shape) for k, v in init_params.items()
               if torch.as_tensor(v).dim() < 1 or torch.as_tensor(v).shape[0] != chains}
        if bad:
            raise ValueError(f"init_params values must have shape [num_chains, *shape] = [{chains}, ...], got {bad}")
        return {k: torch.as_tensor(v) for k, v in init_params.items()}
    init = torch.as_tensor(init_params)
    if not init.is_floating_point():
        init = init.to(torch.get_default_dtype())
    if kernel.event_shape is not None and init.shape == kernel.event_shape:
        init = init.expand(chains, *init.shape)
    if init.dim() < 1 or init.shape[0] != chains:
        raise ValueError(f"init_params must have shape [num_chains, *event] = [{chains}, ...], "
                         f"got {list(init.shape)}")
    return init


def _check_finite(target: Target, x: torch.Tensor) -> None:
    """A ValueError naming the chains whose initial density or gradient is not finite."""
    u, g = target.energy_and_grad(x)
    bad = (~torch.isfinite(u) | ~torch.isfinite(g).flatten(1).all(1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"init_params: the log density or its gradient is not finite at the start of chain(s) "
                         f"{bad[:10]} (potential energy {u[bad[:10]].tolist()}); start where the density is positive")


def _run_description(mcmc: MCMC, seed: int, model_args, model_kwargs, init_params, draws: int,
                     collect_warmup: bool, rank: Optional[int] = None, world_size: Optional[int] = None):
    """Build the target and kernel of `mcmc` and run its chains (all, or rank's share): `(result, target)`."""
    continued = mcmc.post_warmup_state
    if continued is not None:
        result = run_chains(continued.target, continued.kernel, chains=mcmc.num_chains, num_warmup=0,
                            num_draws=draws, thin=mcmc.thinning, seed=seed, threads=0,
                            progress=mcmc.progress_bar, init=continued.state, collect_warmup=collect_warmup)
        return result, continued.target
    init_seed = spawn_seeds(seed, 2)[0]  # the stream run_chains uses for initial positions
    method = "auto" if mcmc.chain_method == "parallel" else mcmc.chain_method
    if mcmc.kernel.model is not None:
        target = mcmc.kernel.target(model_args, model_kwargs, chain_method=method)
        init = mcmc._init(target, init_params, init_seed)
    else:
        start = _potential_init(mcmc, init_params, init_seed)
        target = mcmc.kernel.target(model_args, model_kwargs, start, method)
        init = target.init
    _check_finite(target, init)
    kernel = mcmc.kernel.build(target, mcmc.num_warmup)
    result = run_chains(target, kernel, chains=mcmc.num_chains, num_warmup=mcmc.num_warmup, num_draws=draws,
                        thin=mcmc.thinning, seed=seed, dtype=torch.get_default_dtype(), threads=0,
                        progress=mcmc.progress_bar, init=init.contiguous(), collect_warmup=collect_warmup,
                        rank=rank, world_size=world_size)
    return result, target


def _run_in_process(*args) -> SampleResult:
    """One process's share of a `chain_method="parallel"` run; rank 0 returns every chain's draws."""
    result, _ = _run_description(*args)
    for key in ("kernel_object", "target_object"):  # rebuilt by the caller; they need not pickle
        result.attrs.pop(key, None)
    return result

"""Any Pyro model as an entropy_mcmc `Target` on the unconstrained space, vectorized over chains.

The energy at a flat unconstrained position u (sites in sorted name order) is
Pyro's potential (`pyro.infer.mcmc.util.initialize_model`):

    U(u) = -log p(T^-1(u), data) - sum_sites log|det d T^-1(u) / du|

with T = biject_to(site.support).inv mapping each site's support to R^n.

Vectorization, tried in this order at construction (`method`):

1. "plate": the chains become a batch dimension of the model itself: the model
   runs once under an outer `pyro.plate("_chains", C, dim=-(N + 1))`, N being
   its plate nesting, with every latent site conditioned on a value of shape
   `[C, 1, ..., 1, *site_shape]`. Pyro's broadcasting gives every site's
   log-probability a leading chain dimension, summed per chain.
2. "vmap": `torch.func.vmap` over the log joint of one point (the model run
   with unbatched site values), for models written for one point that the
   plate breaks (`X @ w` with an event-shaped `w`, sums over a site's values).
3. "sequential": Pyro's own potential, once per chain: correct for any model
   Pyro's HMC accepts (discrete latents Pyro enumerates, Python control flow on
   sampled values), but C model runs per evaluation instead of one.

A vectorized energy is trusted only after its value and gradient equal Pyro's
potential, evaluated chain by chain, at three distinct points; a model that
mixes chains fails that check instead of silently sampling the wrong density.
With `vectorize="auto"` (the default) a model that neither way vectorizes falls
back to "sequential" with one `SequentialFallbackWarning` naming the causes.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import pyro
import torch
from pyro import poutine
from pyro.infer.mcmc.util import initialize_model
from pyro.poutine.subsample_messenger import _Subsample

from ..targets.base import Target, energy_and_grad
from ..targets.layout import SiteLayout
from ..targets.potential import SequentialFallbackWarning, same_energy

__all__ = ["PyroTarget", "PotentialTarget", "SequentialFallbackWarning", "target_from_model"]


def _site_filter(name, site) -> bool:
    return not isinstance(site["fn"], _Subsample)


def _is_observation(site) -> bool:
    """An observed site of the data: not a `pyro.deterministic`, a `pyro.factor` or a plate."""
    return (site["type"] == "sample" and site["is_observed"] and not isinstance(site["fn"], _Subsample)
            and not site["infer"].get("_deterministic") and not site["infer"].get("is_auxiliary"))


class PotentialTarget(Target):
    """A target from a Pyro `potential_fn` over dicts of unconstrained site values; one chain at a time.

    This is the adapter's target inside `pyro.infer.MCMC`, where each Pyro chain is a
    single chain `[1, d]` of ours, and the opt-in fallback of `PyroTarget(vectorize=False)`.
    """

    def __init__(self, potential_fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor], layout: SiteLayout,
                 dtype: torch.dtype = torch.float32, name: str = "pyro_potential"):
        super().__init__((layout.dim,))
        self.potential_fn = potential_fn
        self.layout = layout
        self.dtype = dtype
        self.name = name

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        xm = x.to(self.dtype)
        with pyro.validation_enabled(False):  # non-finite proposals become rejections, not exceptions
            u = [self.potential_fn(self.layout.unflatten(xm[i])) for i in range(x.shape[0])]
        return torch.stack(u).reshape(x.shape[0]).to(x.dtype)


class PyroTarget(Target):
    """The posterior of a Pyro model given its arguments, as a `Target` on the flat unconstrained space.

    Parameters
    ----------
    model
        A Pyro model (a callable with `pyro.sample` statements).
    model_args, model_kwargs
        The arguments the model is called with (data, observations).
    vectorize
        "auto" (default): evaluate all chains in one model run (under a chain plate, else
        under `torch.func.vmap`), verified at construction, and fall back to one chain at a time
        with a `SequentialFallbackWarning` where neither holds. True: vectorize or raise a
        `ValueError` naming the causes. False: one chain at a time (slow: one model run per
        chain per evaluation, but correct for any model Pyro's HMC accepts).
    transforms
        Site name -> transform from the support to the unconstrained space
        (Pyro's convention); by default `biject_to(site.support).inv`.
    max_plate_nesting
        The model's plate nesting; guessed from a trace by default.
    check
        Compare the vectorized energy and gradient with Pyro's potential at three points at
        construction (False: trust the chain plate unchecked).
    jit_compile
        Trace the chain-plate energy with the PyTorch JIT, once per number of chains,
        dtype and device (about 1.7x faster on German BLR). The trace fixes Python control
        flow and the values of the `pyro.param` sites at tracing time.
    name
        A name for reports (default: the model's name).

    Attributes
    ----------
    layout
        The `SiteLayout` (sorted site names, unconstrained shapes) of the flat position.
    transforms
        The transforms per site, as Pyro's `initialize_model` returns them.
    potential_fn
        Pyro's potential over dicts of unconstrained values (one point).
    plate_nesting
        N, so that the chain plate sits at dim -(N + 1).
    method
        How chains are evaluated: "plate", "vmap" or "sequential".
    fallback_reason
        Why the model is evaluated sequentially (None when it vectorizes).
    """

    def __init__(self, model: Callable, model_args: Sequence = (), model_kwargs: Optional[Mapping] = None, *,
                 vectorize: Union[bool, str] = "auto", transforms: Optional[Dict] = None,
                 max_plate_nesting: Optional[int] = None, check: bool = True, jit_compile: bool = False,
                 name: Optional[str] = None):
        if vectorize not in ("auto", True, False):
            raise ValueError(f"vectorize must be 'auto', True or False, got {vectorize!r}")
        self.model = model
        self.jit_compile = bool(jit_compile)
        self._jit_cache: Dict = {}
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        name = name or getattr(model, "__name__", "pyro_model")
        try:
            with poutine.block():
                init, potential_fn, transforms, trace = initialize_model(
                    model, self.model_args, self.model_kwargs, transforms=transforms,
                    max_plate_nesting=max_plate_nesting)
        except (NotImplementedError, ValueError) as e:  # e.g. a discrete latent site Pyro cannot enumerate
            raise ValueError(f"{name}: Pyro cannot build a potential for this model: {str(e).splitlines()[0]}") from e
        if not init:
            raise ValueError(f"{name}: the model has no continuous latent sites to sample")
        self.layout = SiteLayout.from_params(init)
        super().__init__((self.layout.dim,))
        self.name = name
        self.transforms = transforms
        self.potential_fn = potential_fn
        self.dtype = init[self.layout.names[0]].dtype
        self._prototype = trace

        sites = [(n, s) for n, s in trace.nodes.items()
                 if s["type"] == "sample" and not isinstance(s["fn"], _Subsample)]
        self.discrete_sites = tuple(n for n, s in sites if not s["is_observed"] and s["fn"].has_enumerate_support)
        self._constrained_shapes = {n: trace.nodes[n]["value"].shape for n in self.layout.names}
        batch_len = {n: trace.nodes[n]["value"].dim() - trace.nodes[n]["fn"].event_dim for n in self.layout.names}
        frame_dims = [f.dim for _, s in sites for f in s["cond_indep_stack"] if f.vectorized and f.dim is not None]
        nesting = max([0, *(-d for d in frame_dims), *(len(s["fn"].batch_shape) for n, s in sites
                                                      if n not in self.discrete_sites)])
        if max_plate_nesting is not None:
            nesting = max(nesting, int(max_plate_nesting))
        self.plate_nesting = nesting
        self._pad = {n: nesting - batch_len[n] for n in self.layout.names}
        self._loop = PotentialTarget(potential_fn, self.layout, self.dtype, name)

        self.method, self.fallback_reason = "sequential", None
        if vectorize is not False:
            self._choose_method(check)
        if self.method == "sequential" and vectorize is not False:
            self.fallback_reason = "; ".join(self._reasons)
            message = f"{name}: cannot vectorize over chains: {self.fallback_reason}."
            if vectorize is True:
                raise ValueError(f"{message} Pass vectorize='auto' or False to evaluate chains one at a time (slow).")
            warnings.warn(f"{message} Evaluating the model once per chain instead: C model runs per log-density "
                          "evaluation for C chains instead of one, about C times slower.",
                          SequentialFallbackWarning, stacklevel=3)

    @property
    def vectorize(self) -> bool:
        """Whether all chains are evaluated in one model run ("plate" or "vmap")."""
        return self.method != "sequential"

    def _choose_method(self, check: bool) -> None:
        self._reasons: List[str] = []
        if self.discrete_sites:
            self._reasons.append(f"latent site(s) {list(self.discrete_sites)} are discrete and Pyro enumerates "
                                 "them inside its potential, which neither a chain plate nor vmap supports")
            return
        if not check:
            self.method = "plate"
            return
        for method in ("plate", "vmap"):
            reason = self._verify(method)
            if reason is None:
                self.method = method
                return
            self._reasons.append(reason)

    def _verify(self, method: str, num_points: int = 3) -> Optional[str]:
        """None if `method`'s energy and gradient equal Pyro's per-chain potential at `num_points` points,
        else why not."""
        gen = torch.Generator().manual_seed(0)
        x = (torch.rand(num_points, self.dim, generator=gen, dtype=self.dtype) * 2 - 1) * 2.0
        where = (f"pyro.plate('_chains', {num_points}, dim={-self.plate_nesting - 1})" if method == "plate"
                 else "torch.func.vmap")
        energy = self._chain_plate_energy if method == "plate" else self._vmap_energy
        try:
            u, g = energy_and_grad(energy, x)
        except Exception as e:  # noqa: BLE001 - any failure here means the model does not vectorize this way
            return f"under {where} the model failed with {type(e).__name__}: {str(e).splitlines()[0]}"
        reference = self._loop.energy_and_grad(x)
        if not same_energy((u, g), reference):
            return (f"under {where} the energy or its gradient ({u.tolist()}) differs from Pyro's potential "
                    f"({reference[0].tolist()}) at the same points, so the model mixes chains (for example by summing, "
                    "reshaping or indexing sampled values along batch dimensions)")
        return None

    # -- energies ---------------------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "plate":
            return self._vectorized_energy(x)
        if self.method == "vmap":
            return self._vmap_energy(x)
        return self._loop.energy(x)

    def _constrained(self, u: Dict[str, torch.Tensor], batch: int):
        """Constrained site values and sum of log|dx/du| per point, from unconstrained `u` with `batch` leading dims."""
        values, log_det = {}, 0.0
        for n in self.layout.names:
            t = self.transforms[n]  # maps the support to R^n
            values[n] = t.inv(u[n])
            log_det = log_det - t.log_abs_det_jacobian(values[n], u[n]).reshape(*u[n].shape[:batch], -1).sum(-1)
        return values, log_det

    def _point_trace(self, x: torch.Tensor):
        """The model's trace at one unconstrained point `[d]` (log-probs computed) and the log-Jacobian."""
        values, log_det = self._constrained(self.layout.unflatten(x), 0)
        with poutine.block(), pyro.validation_enabled(False):
            trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(
                *self.model_args, **self.model_kwargs)
            trace.compute_log_prob(_site_filter)
        self._check_latents(trace, values)
        return trace, log_det

    def _point_energy(self, x: torch.Tensor) -> torch.Tensor:
        trace, log_det = self._point_trace(x)
        return -(trace.log_prob_sum(_site_filter) + log_det)

    def _vmap_energy(self, x: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(self._point_energy)(x.to(self.dtype)).to(x.dtype)

    def _check_latents(self, trace, values) -> None:
        for n, site in trace.nodes.items():
            if site["type"] == "sample" and not site["is_observed"] and n not in values \
                    and not isinstance(site["fn"], _Subsample):
                raise ValueError(f"{self.name}: latent site {n!r} did not appear in the prototype trace; "
                                 "models whose latent sites change from run to run have no fixed target")

    def _chain_model(self, num_chains: int) -> Callable:
        model, dim = self.model, -self.plate_nesting - 1

        def chained(*args, **kwargs):
            with pyro.plate("_chains", num_chains, dim=dim):
                return model(*args, **kwargs)

        return chained

    def _vectorized_energy(self, x: torch.Tensor) -> torch.Tensor:
        if not self.jit_compile:
            return self._chain_plate_energy(x)
        key = (x.shape[0], x.dtype, x.device)
        fn = self._jit_cache.get(key)
        if fn is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                fn = torch.jit.trace(self._chain_plate_energy, (x.detach(),), check_trace=False)
            self._jit_cache[key] = fn
        return fn(x)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_jit_cache"] = {}  # traced functions do not pickle; they are rebuilt on use
        return state

    def _chain_plate_trace(self, x: torch.Tensor):
        """The model's trace under the chain plate at unconstrained points `[C, d]`, and the log-Jacobians `[C]`."""
        c = x.shape[0]
        values, log_det = self._constrained(self.layout.unflatten(x), 1)
        values = {n: v.reshape(c, *([1] * self._pad[n]), *self._constrained_shapes[n]) for n, v in values.items()}
        with poutine.block(), pyro.validation_enabled(False):
            trace = poutine.trace(poutine.condition(self._chain_model(c), data=values)).get_trace(
                *self.model_args, **self.model_kwargs)
            trace.compute_log_prob(_site_filter)
        self._check_latents(trace, values)
        return trace, log_det

    def _chain_plate_energy(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[0]
        xm = x.to(self.dtype)
        trace, log_det = self._chain_plate_trace(xm)
        log_joint = xm.new_zeros(c)
        for n, site in trace.nodes.items():
            if site["type"] == "sample" and not isinstance(site["fn"], _Subsample):
                log_joint = log_joint + self._per_chain(n, site["log_prob"], c)
        return (-(log_joint + log_det)).to(x.dtype)

    def _per_chain(self, site_name: str, log_prob, c: int) -> torch.Tensor:
        """Sum a site's log-probability over everything but the chain dimension at -(N + 1)."""
        lp = torch.as_tensor(log_prob)
        depth = self.plate_nesting + 1
        if lp.dim() < depth or lp.shape[-depth] == 1:  # the same for every chain
            return lp.sum().expand(c)
        if lp.dim() > depth or lp.shape[0] != c:
            raise ValueError(
                f"{self.name}: cannot vectorize over chains: site {site_name!r} has log_prob shape {list(lp.shape)} "
                f"under the chain plate of size {c} at dim {-depth}; the model adds batch dimensions its plates "
                "do not declare (set max_plate_nesting) or reshapes sampled values")
        return lp.reshape(c, -1).sum(1)

    # -- positions --------------------------------------------------------------------------
    def initial_position(self, num_chains: int, radius: float = 2.0, generator: Optional[torch.Generator] = None,
                         dtype: Optional[torch.dtype] = None, device=None, max_tries: int = 100,
                         candidates: int = 1) -> torch.Tensor:
        """`[num_chains, d]` unconstrained positions drawn uniformly in [-radius, radius] (Pyro's `init_to_uniform`),
        redrawn per chain until the energy and its gradient are finite; with `candidates` > 1, each chain starts at
        the lowest-energy of that many such draws (`MCMC` takes 10: a start where a recursion explodes, as ARMA's
        with ``|theta| > 1``, holds a chain, and the step size its chains share, for the whole warmup)."""
        best_x, best_u = None, None
        for _ in range(candidates):
            x, u = self._finite_draws(num_chains, radius, generator, dtype or self.dtype, device, max_tries)
            if best_x is None:
                best_x, best_u = x, u
            else:
                better = u < best_u
                best_x[better], best_u[better] = x[better], u[better]
        return best_x

    def _finite_draws(self, num_chains, radius, generator, dtype, device, max_tries):
        x = torch.empty(num_chains, self.dim, dtype=dtype, device=device)
        u = torch.empty(num_chains, dtype=dtype, device=device)
        todo = torch.ones(num_chains, dtype=torch.bool)
        for _ in range(max_tries):
            n = int(todo.sum())
            draw = (torch.rand(n, self.dim, generator=generator, dtype=dtype) * 2 - 1) * radius
            x[todo] = draw.to(device=x.device)
            uu, g = self.energy_and_grad(x)
            ok = torch.isfinite(uu).cpu() & torch.isfinite(g).flatten(1).all(1).cpu()
            u[todo & ok] = uu[todo & ok]
            todo &= ~ok
            if not todo.any():
                return x, u
        raise ValueError(f"{self.name}: no finite initial energy after {max_tries} draws for "
                         f"{int(todo.sum())} chain(s)")

    def flatten(self, params: Mapping[str, torch.Tensor], batch_dims: int = 1) -> torch.Tensor:
        """Unconstrained site values `{name: [*batch, *shape]}` to a flat `[*batch, d]` position."""
        return self.layout.flatten(params, batch_dims)

    def unconstrained(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.layout.unflatten(x)

    def constrain(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Flat unconstrained positions `[*batch, d]` to constrained site values `{name: [*batch, *shape]}`."""
        return {n: self.transforms[n].inv(u) for n, u in self.layout.unflatten(x).items()}

    def observed_values(self) -> Dict[str, torch.Tensor]:
        """The data: each observed site's value (ArviZ's `observed_data`)."""
        return {n: s["value"] for n, s in self._prototype.nodes.items()
                if _is_observation(s) and n not in self.layout.names}

    def site_draws(self, x: torch.Tensor, chunk: int = 1024):
        """At unconstrained draws `[*batch, d]`: the values of the `pyro.deterministic` sites
        `{name: [*batch, *shape]}` and every observed site's pointwise log-likelihood
        `{name: [*batch, *site_batch_shape]}` (log-probabilities summed over event dimensions, as
        ArviZ's `log_likelihood` group holds them), the model run `chunk` draws at a time. A model with
        discrete latent sites, which Pyro marginalizes by enumeration, gives neither (both depend on the
        discrete values, which are not sampled)."""
        if self.discrete_sites:
            return {}, {}
        batch = x.shape[:-1]
        flat = x.detach().reshape(-1, self.dim).to(self.dtype)
        shapes = self._site_shapes()
        if not any(shapes):
            return {}, {}
        parts = []
        with torch.no_grad():
            for i in range(0, flat.shape[0], chunk):
                xc = flat[i:i + chunk]
                if self.method == "plate":
                    parts.append(self._plate_sites(xc, shapes))
                elif self.method == "vmap":
                    parts.append(torch.func.vmap(self._point_sites)(xc))
                else:
                    rows = [self._point_sites(xi) for xi in xc]
                    parts.append(tuple({k: torch.stack([r[j][k] for r in rows]) for k in rows[0][j]} for j in (0, 1)))
        return tuple({k: torch.cat([p[j][k] for p in parts]).reshape(*batch, *shapes[j][k]) for k in shapes[j]}
                     for j in (0, 1))

    def _site_shapes(self):
        """`({deterministic: value shape}, {observed: log-prob shape})` at one point."""
        if getattr(self, "_shapes", None) is None:
            det, ll = self._point_sites(torch.zeros(self.dim, dtype=self.dtype))
            self._shapes = ({k: v.shape for k, v in det.items()}, {k: v.shape for k, v in ll.items()})
        return self._shapes

    def _point_sites(self, x: torch.Tensor):
        trace, _ = self._point_trace(x)
        det = {n: s["value"] for n, s in trace.nodes.items()
               if s["type"] == "sample" and s["infer"].get("_deterministic")}
        ll = {n: s["log_prob"] for n, s in trace.nodes.items() if _is_observation(s) and n not in self.layout.names}
        return det, ll

    def _plate_sites(self, x: torch.Tensor, shapes):
        c = x.shape[0]
        trace, _ = self._chain_plate_trace(x)

        def per_chain(v, shape):  # [c, 1, ..., *shape] (or [*shape] where no latent enters) -> [c, *shape]
            v = torch.as_tensor(v)
            return v.reshape(c, *shape) if v.numel() == c * math.prod(shape) else v.expand(c, *shape)

        det = {n: per_chain(trace.nodes[n]["value"], shape) for n, shape in shapes[0].items()}
        ll = {n: per_chain(trace.nodes[n]["log_prob"], shape) for n, shape in shapes[1].items()}
        return det, ll

    def to_inference_data(self, result):
        """ArviZ `InferenceData` of a `SampleResult` on this target: the posterior per site on the
        constrained space (Pyro's site names) and the runner's `sample_stats`."""
        import arviz as az

        samples = {k: v.detach().cpu().numpy() for k, v in self.constrain(result.draws).items()}
        posterior = az.from_dict(posterior=samples).posterior
        stats = result.to_arviz()
        return az.InferenceData(posterior=posterior, sample_stats=stats.sample_stats)

    def __repr__(self) -> str:
        return (f"PyroTarget(name={self.name!r}, sites={self.layout!r}, vectorize={self.vectorize}, "
                f"plate_nesting={self.plate_nesting})")


def target_from_model(model: Callable, *args, **kwargs) -> PyroTarget:
    """`PyroTarget(model, args, kwargs)`: the posterior of `model(*args, **kwargs)`, vectorized over chains where
    the model allows it (`vectorize="auto"`)."""
    return PyroTarget(model, args, kwargs)

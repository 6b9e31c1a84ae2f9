"""The kernel registry: one place for each kernel's defaults and for the order of the wrappers around it.

    kernel = build_kernel("hmc", target, num_warmup=500)   # StepSizeJitter(StepSizeAdaptation(HMCKernel))

The CLI, the bench suite, `PyroKernel`, the NumPyro-style front door and the trainers all build
kernels here. Other packages add kernels through the `entropy_mcmc.kernels` entry point group: the
entry point is a `KernelSpec`, or a callable `(target, **options) -> TransitionKernel`. An entry point is
loaded when its name is asked for (`get_kernel_spec`, `build_kernel`); `kernel_names` reads the names from the
installed metadata and `kernel_specs` loads them all. This module imports neither torch nor a kernel until one is
built, so listing the kernels (`entropy-mcmc sample --help`) is quick.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

from ..plugins import PluginGroup, first_line

if TYPE_CHECKING:
    from .base import TransitionKernel

GROUP = "entropy_mcmc.kernels"


@dataclass(frozen=True)
class KernelOption:
    """A keyword of a kernel's builder that the CLI offers as `flag` (default `--name-with-dashes`), restricted to
    `choices` when given; `required`: the command line must give it (the builder may still have a fallback)."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    flag: Optional[str] = None
    choices: Optional[Tuple[Any, ...]] = None
    required: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


STATE_SPACES = ("real", "binary", "phase", "categorical")


@dataclass(frozen=True)
class Capabilities:
    """What a kernel needs and offers; the runner, CLI, bench, Pyro adapter and trainers ask this, never the name.

    Parameters
    ----------
    state_space
        The states it moves: "real" (R^d), "binary" ({0, 1}^d), "phase" (complex units, a CAP-RBM's
        layer) or "categorical" (cluster labels); it runs only on a target declaring the same `state_space`
        (`Target.state_space` is "real"; a target object without the attribute is not checked).
    needs_gradient
        It calls the target's gradient.
    step_size, mass_matrix
        It has a step size / a mass matrix that warmup can tune.
    exact
        Its stationary distribution is the target (MH-corrected or exact Gibbs); False for ULA, annealing.
    trainable
        It carries a model trained for the target (the learned sampler); a trainer that knows how trains
        it in its loop, `PyroKernel` trains it at setup.
    schedule_option
        The option naming the number of steps its schedule spans (annealed Langevin's anneal
        steps); a caller that runs k steps per call (a trainer's negative phase) sets it to k.
    """

    state_space: str = "real"
    needs_gradient: bool = True
    step_size: bool = True
    mass_matrix: bool = False
    exact: bool = True
    trainable: bool = False
    schedule_option: Optional[str] = None

    def __post_init__(self):
        if self.state_space not in STATE_SPACES:
            raise ValueError(f"state_space must be one of {', '.join(STATE_SPACES)}, got {self.state_space!r}")

    def describe(self) -> str:
        """One line for `entropy-mcmc list`."""
        flags = [self.state_space, "gradient" if self.needs_gradient else "no gradient",
                 "exact" if self.exact else "approximate"]
        flags += [name for name, on in (("step size", self.step_size), ("mass matrix", self.mass_matrix),
                                        ("trainable", self.trainable)) if on]
        return ", ".join(flags)

    def check_target(self, kernel: str, target) -> None:
        """ValueError in one line unless `target` has this kernel's state space (or declares none)."""
        space = getattr(target, "state_space", None)
        if target is not None and space is not None and space != self.state_space:
            what = getattr(target, "name", None) or type(target).__name__
            raise ValueError(f"kernel {kernel!r} moves {self.state_space} states, but target {what!r} has "
                             f"{space} states; `entropy-mcmc list` shows each kernel's state space")


@dataclass
class KernelSpec:
    """How a kernel is built by name, and its defaults.

    Parameters
    ----------
    build
        `(target, **options) -> TransitionKernel`; gets `step_size` when one is known.
    help
        One line for `--help` and `entropy-mcmc list`.
    step_size
        Initial step size (None: the kernel's own, e.g. a trained sampler's eps).
    target_accept
        The acceptance rate step-size adaptation aims at.
    adapts_step_size
        Whether warmup adapts the step size (False for a trained learned sampler).
    adapts_mass
        The default mass-matrix adaptation: False, "diag", "dense" or "auto" (`StepSizeAdaptation`).
    step_size_jitter
        Default jitter after warmup (HMC: 0.5, see BENCHMARKS.md).
    options
        The builder's own keywords the CLI exposes.
    warmup_kernel
        A registry kernel that runs the warmup instead (adapted as its own spec says, with the
        `target_accept`, `adapt_mass` and `per_chain` given to `build_kernel`) and then hands the chains to
        this one (`WarmupHandoff`); for a kernel that cannot adapt and may not move outside the typical
        set, the trained learned sampler. Such a spec may have a `mixture_share` option: after warmup, each
        step is one of the (frozen) warmup kernel with that probability (`MixtureKernel`).
    source
        "built-in", or the distribution a plugin came from.
    capabilities
        What the kernel needs and offers (`Capabilities`); a plugin that declares none is taken as
        an exact real-valued gradient kernel with a step size.
    """

    build: Callable[..., TransitionKernel]
    help: str = ""
    step_size: Optional[float] = 0.1
    target_accept: Optional[float] = None
    adapts_step_size: bool = True
    adapts_mass: Union[bool, str] = False
    step_size_jitter: float = 0.0
    options: Tuple[KernelOption, ...] = ()
    source: str = "built-in"
    warmup_kernel: Optional[str] = None
    capabilities: Capabilities = Capabilities()

    def defaults(self) -> Dict[str, Any]:
        out = {"step_size": self.step_size, "target_accept": self.target_accept if self.adapts_step_size else None,
               "adapt_mass": self.adapts_mass or None, "jitter": self.step_size_jitter or None}
        out.update({o.name: o.default for o in self.options})
        return {k: v for k, v in out.items() if v is not None}


_KERNELS: Dict[str, KernelSpec] = {}
PLUGINS = PluginGroup(GROUP)


def register_kernel(name: str, spec: Union[KernelSpec, Callable[..., TransitionKernel]]) -> KernelSpec:
    """Make `name` buildable by `build_kernel` (and `sample --kernel NAME`, `PyroKernel(kernel=NAME)`, ...)."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"a kernel name must be a non-empty word, got {name!r}")
    if not isinstance(spec, KernelSpec):
        if not callable(spec):
            raise TypeError(f"register_kernel needs a KernelSpec or a callable, got {type(spec).__name__}")
        spec = KernelSpec(build=spec, help=first_line(spec))
    _KERNELS[name] = spec
    return spec


def _load_plugins(only: Optional[str] = None) -> None:
    """Register the entry point named `only`, or every one when None; each at most once."""
    for name, obj, source in PLUGINS.load(only):
        if name in _KERNELS and _KERNELS[name] is obj:
            continue  # a module of this package registered it at import
        if name in _KERNELS:
            PLUGINS.errors[name] = (f"kernel name {name!r} is taken by {_KERNELS[name].source}; "
                                    f"plugin from {source} ignored")
            continue
        if not isinstance(obj, KernelSpec) and not callable(obj):
            PLUGINS.errors[name] = f"entry point is a {type(obj).__name__}, not a KernelSpec or a callable"
            continue
        spec = obj if isinstance(obj, KernelSpec) else KernelSpec(build=obj, help=first_line(obj))
        if spec.source == "built-in":
            spec = dataclasses.replace(spec, source=source)
        _KERNELS[name] = spec


def kernel_names() -> List[str]:
    """Every kernel `build_kernel` knows, built-in and plugged in; a plugin's name comes from its metadata (nothing
    is imported), and one that failed to load is left out."""
    if PLUGINS.all_loaded:
        return sorted(_KERNELS)
    return sorted(set(_KERNELS) | set(PLUGINS.names()))


def kernel_specs(load_plugins: bool = True) -> Dict[str, KernelSpec]:
    """name -> spec of every kernel; `load_plugins=False`: only those registered so far (the built-in ones and the
    plugins already loaded), importing nothing."""
    if load_plugins:
        _load_plugins()
    return dict(sorted(_KERNELS.items()))


def get_kernel_spec(name: str) -> KernelSpec:
    """The spec of kernel `name`, loading the plugin of that name (and no other) when it is not registered yet."""
    if name not in _KERNELS:
        _load_plugins(name)
    if name not in _KERNELS:
        error = PLUGINS.errors.get(name)
        broken = f" (plugin {name!r} failed to load: {error})" if error else ""
        raise ValueError(f"unknown kernel {name!r}{broken}; known kernels: {', '.join(kernel_names())}")
    return _KERNELS[name]


def build_kernel(name: Union[str, KernelSpec], target, *, num_warmup: int = 0, target_accept: Optional[float] = None,
                 step_size: Optional[float] = None, adapt_mass: Union[None, bool, str] = None,
                 jitter: Optional[float] = None, per_chain: bool = False, replicas: Optional[int] = None,
                 max_temperature: Optional[float] = None, **kernel_options) -> TransitionKernel:
    """The kernel `name` (a registry name, or a `KernelSpec` not in the registry) on `target`, wrapped as its spec
    says: `StepSizeAdaptation` when it adapts and there is a warmup, then `StepSizeJitter` when the jitter is
    positive. None means the spec's default.

    A spec with a `warmup_kernel` (`learned`) comes back as `WarmupHandoff(MixtureKernel(warmup kernel, kernel,
    mixture_share), warmup kernel)`: `target_accept`, `adapt_mass` and `per_chain` then go to the warmup kernel,
    `step_size` and `jitter` to the kernel; no mixture with a zero share, no handoff without warmup.

    With `replicas` R, the kernel is the inner kernel of a `ReplicaExchange` on a geometric ladder of R temperatures
    up to `max_temperature` (default 30), its step sizes adapted per temperature (`build_replica_exchange`); the
    result has the kernel's capabilities (exact when it is, the same state space).

    Raises ValueError for an unknown name, an option the kernel cannot honour (mass adaptation without a mass
    matrix, a jitter outside [0, 1)), and TypeError for a builder that does not return a TransitionKernel.
    """
    from .adaptation import StepSizeAdaptation
    from .base import TransitionKernel
    from .jitter import StepSizeJitter

    spec = name if isinstance(name, KernelSpec) else get_kernel_spec(name)
    spec.capabilities.check_target(name if isinstance(name, str) else getattr(spec.build, "__name__", "kernel"),
                                   target)
    if isinstance(num_warmup, bool) or int(num_warmup) != num_warmup or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    if replicas is not None:
        from .replica_exchange import build_replica_exchange

        return build_replica_exchange(build_kernel, name, spec, target, replicas, max_temperature,
                                      num_warmup=num_warmup, target_accept=target_accept, step_size=step_size,
                                      adapt_mass=adapt_mass, jitter=jitter, per_chain=per_chain, **kernel_options)
    if max_temperature is not None:
        raise ValueError("max_temperature applies to replica exchange: give replicas too")
    options = {o.name: o.default for o in spec.options if o.default is not None}
    options.update(kernel_options)
    if spec.warmup_kernel is not None:
        share = options.pop("mixture_share", 0.0)
        own = dataclasses.replace(spec, warmup_kernel=None,
                                  options=tuple(o for o in spec.options if o.name != "mixture_share"))
        kernel = build_kernel(own, target, num_warmup=0, step_size=step_size, jitter=jitter, **options)
        return _hand_off(spec.warmup_kernel, kernel, target, num_warmup, share, target_accept=target_accept,
                         adapt_mass=adapt_mass, per_chain=per_chain)
    s = spec.step_size if step_size is None else step_size
    if s is not None:
        options["step_size"] = s
    kernel = spec.build(target, **options)
    if not isinstance(kernel, TransitionKernel):
        raise TypeError(f"the builder of kernel {getattr(spec.build, '__name__', name)!r} returned a "
                        f"{type(kernel).__name__}, not an entropy_mcmc TransitionKernel")
    base = kernel.base
    mass = spec.adapts_mass if adapt_mass is None else adapt_mass
    if mass is True:
        mass = "diag"
    if mass not in (False, None, "diag", "dense", "auto"):
        raise ValueError(f"adapt_mass must be False, True, 'diag', 'dense' or 'auto', got {adapt_mass!r}")
    if mass and not hasattr(base, "inv_mass"):
        raise ValueError(f"mass-matrix adaptation does not apply to kernel {name!r} (it has no mass matrix)")
    jitter = spec.step_size_jitter if jitter is None else jitter
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"step-size jitter must lie in [0, 1), got {jitter!r}")
    if getattr(base, "step_size", None) is None:
        return kernel
    if num_warmup > 0 and spec.adapts_step_size and base.is_calibrated:
        accept = spec.target_accept if target_accept is None else target_accept
        kernel = StepSizeAdaptation(kernel, target_accept=accept if accept is not None else 0.8, per_chain=per_chain,
                                    adapt_mass_matrix=mass or False)
    return StepSizeJitter(kernel, jitter) if jitter > 0 else kernel


def _hand_off(helper_name: str, kernel: TransitionKernel, target, num_warmup: int, share,
              **helper_options) -> TransitionKernel:
    """`WarmupHandoff(MixtureKernel(helper, kernel, share), helper)`, the helper adapted during warmup as its
    spec says; without a share no mixture, without warmup no handoff."""
    from .handoff import WarmupHandoff
    from .mixture import MixtureKernel

    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share < 1.0:
        raise ValueError(f"mixture_share must lie in [0, 1), got {share!r}")
    helper = build_kernel(helper_name, target, num_warmup=num_warmup, **helper_options)
    main = MixtureKernel(helper, kernel, float(share)) if share > 0 else kernel
    return WarmupHandoff(main, helper) if num_warmup > 0 else main


def mixture_share(text) -> float:
    """A `--mixture-share` value: a probability in [0, 1)."""
    v = float(text)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"expected a share in [0, 1), got {text!r}")
    return v


def _positive_int(text) -> int:
    v = int(text)
    if v < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return v


def _positive_finite(text) -> float:
    v = float(text)
    if not 0.0 < v < float("inf"):
        raise ValueError(f"expected a positive finite number, got {text!r}")
    return v


# The builders import their kernel at the first build.
def _rwm(target, **options) -> TransitionKernel:
    from .rwm import RandomWalkMetropolis

    return RandomWalkMetropolis(target, **options)


def _mala(target, **options) -> TransitionKernel:
    from .mala import MALAKernel

    return MALAKernel(target, **options)


def _nuts(target, **options) -> TransitionKernel:
    from .nuts import NUTSKernel

    return NUTSKernel(target, **options)


def _ula(target, **options) -> TransitionKernel:
    from .langevin import UnadjustedLangevin

    return UnadjustedLangevin(target, **options)


def _learned(target, **options) -> TransitionKernel:
    from .learned.build import make_learned_kernel

    return make_learned_kernel(target, **options)


register_kernel("rwm", KernelSpec(_rwm, "random-walk Metropolis", target_accept=0.234,
                                  capabilities=Capabilities(needs_gradient=False)))
# MALA adapts a dense preconditioner by default: on German BLR (64 chains, 500 warmup + 1000 draws, seed 1)
# a diagonal one leaves max R-hat at 1.04 and min ESS 1642, a dense one 1.007 and 9211 (BENCHMARKS.md).
register_kernel("mala", KernelSpec(_mala, "Metropolis-adjusted Langevin, preconditioned by an adapted dense mass "
                                   "matrix", target_accept=0.574, adapts_mass="dense",
                                   capabilities=Capabilities(mass_matrix=True)))
# NUTS with Stan's warmup: dual averaging toward 0.8, the mass matrix from the windows, no jitter. The mass matrix
# is "auto" (dense when the windows can estimate it and the posterior is correlated, else diagonal; adaptation.py):
# min ESS per gradient, dense over diagonal, 4.5x on German (256 and 64 chains), 14x on kidiq-kidscore_momhsiq and
# 8x on earnings-logearn_interaction_z (4 chains); on sblrc-blr auto keeps the diagonal one, where dense gives 0.75x
# (BENCHMARKS.md, "Dense mass matrices").
register_kernel("nuts", KernelSpec(_nuts, "the No-U-Turn sampler (multinomial, generalized U-turn criterion), "
                                   "vectorized over chains, adapted mass matrix (dense or diagonal: auto)",
                                   target_accept=0.8, adapts_mass="auto", capabilities=Capabilities(mass_matrix=True),
                                   options=(KernelOption("max_tree_depth", _positive_int, 10,
                                                         "NUTS: at most 2^D - 1 leapfrog steps per transition "
                                                         "(default 10)"),)))


PATH_LENGTH_ADAPTATIONS = ("none", "chees")


def hmc(target, step_size=0.1, num_steps: int = 4, adapt_path_length: str = "none", max_num_steps: int = 1000,
        **options) -> TransitionKernel:
    """HMC with `num_steps` leapfrog steps; with `adapt_path_length="chees"`, ChEES-HMC (`samplers.chees`): the
    number of steps drawn from a jittered trajectory length that starts at `num_steps` step sizes, is tuned by the
    ChEES criterion over the chains during warmup (`ChEESAdaptation`) and is capped at `max_num_steps` steps."""
    import torch

    from .chees import ChEESAdaptation, ChEESHMC
    from .hmc import HMCKernel

    if adapt_path_length not in PATH_LENGTH_ADAPTATIONS:
        raise ValueError(f"adapt_path_length must be one of {', '.join(PATH_LENGTH_ADAPTATIONS)}, "
                         f"got {adapt_path_length!r}")
    if adapt_path_length == "none":
        return HMCKernel(target, step_size, num_steps, **options)
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    length = num_steps * float(torch.as_tensor(step_size, dtype=torch.float64).mean())
    return ChEESAdaptation(ChEESHMC(target, step_size, length, max_num_steps=max_num_steps, **options))


HMC_OPTIONS = (KernelOption("num_steps", _positive_int, 4,
                            "hmc: leapfrog steps per transition (default 4); with --adapt-path-length chees the "
                            "initial trajectory length in step sizes (chees-hmc: default 1)", flag="--leapfrog-steps"),
               KernelOption("adapt_path_length", str, "none",
                            "hmc: 'chees' draws each transition's leapfrog steps from a jittered trajectory length "
                            "tuned during warmup by the ChEES criterion over the chains (Hoffman et al. 2021), "
                            "'none' keeps --leapfrog-steps fixed (hmc: default none; chees-hmc: chees)",
                            choices=PATH_LENGTH_ADAPTATIONS),
               KernelOption("max_num_steps", _positive_int, 1000,
                            "hmc with --adapt-path-length chees, chees-hmc: at most this many leapfrog steps per "
                            "transition (default 1000)", flag="--max-leapfrog-steps"))
# HMC: 4 leapfrog steps, acceptance 0.8, step-size jitter 0.5, the mass matrix "auto". On German (256 chains) the
# dense mass matrix auto picks gives min ESS per gradient 0.43 at 4 steps against 0.11 for a diagonal one (0.07 at
# the former 10 steps); with it 2, 3, 5 and 10 steps give 0.19, 0.43, 0.31 and 0.06 (in the whitened coordinates
# 4 steps of ~0.74 make a path of ~3 sds, 10 steps run into a full period), and acceptance 0.7 or 0.9 at 4 steps
# 0.32 and 0.34 (BENCHMARKS.md, "Dense mass matrices").
HMC_SPEC = register_kernel("hmc", KernelSpec(hmc, "HMC, fixed number of leapfrog steps (or ChEES-tuned jittered "
                                             "lengths: --adapt-path-length chees), adapted mass matrix (dense or "
                                             "diagonal: auto)",
                                             target_accept=0.8, adapts_mass="auto", step_size_jitter=0.5,
                                             options=HMC_OPTIONS, capabilities=Capabilities(mass_matrix=True)))
# ChEES-HMC as BlackJAX's chees_adaptation: hmc with --adapt-path-length chees, starting from one leapfrog step,
# the step size aimed at 0.651 (read on the harmonic mean of the chains' acceptances), no step-size jitter on top
# of the Halton jitter of the length. The mass matrix is hmc's "auto": dense over diagonal, min ESS per gradient
# 2.4x on German (256 and 64 chains), 3.4x on earnings-logearn_interaction_z, 1.1x on sblrc-blr (16 chains). A
# target of 0.8 instead of 0.651 gives the same ESS per gradient on German (0.26 and 0.27).
register_kernel("chees-hmc", dataclasses.replace(
    HMC_SPEC, help="HMC with jittered trajectory lengths tuned by the ChEES criterion over the chains (Hoffman et "
    "al. 2021), adapted mass matrix (dense or diagonal: auto): hmc --adapt-path-length chees as BlackJAX sets it up",
    target_accept=0.651, step_size_jitter=0.0,
    options=tuple(dataclasses.replace(o, default={"num_steps": 1, "adapt_path_length": "chees"}.get(o.name, o.default))
                  for o in HMC_OPTIONS)))
register_kernel("ula", KernelSpec(_ula, "unadjusted Langevin (no accept step: biased by O(s^2), "
                                  "fixed step size)", step_size=0.01, adapts_step_size=False,
                                  capabilities=Capabilities(exact=False)))
# After warmup, 5% of the steps are adapted MALA: a chain where the flow proposes nothing acceptable still moves
# (a stuck chain gets ~100 MALA steps per 2000 draws, and dense-preconditioned MALA contracts the distance to
# the mode by ~20% per accepted step, so ~10 accepted steps bring it in from 10 posterior sds), while the
# learned kernel keeps 95% of the steps (ESS cost measured in BENCHMARKS.md, "The learned sampler from a
# user's starting point").
DEFAULT_MIXTURE_SHARE = 0.05
register_kernel("learned", KernelSpec(
    _learned, "the entropy-maximizing learned sampler (thesis ch. 4) of sampler=PATH (trained by "
    "`entropy-mcmc train-sampler`; PyroKernel trains one on its model); warmup moves the chains into the typical "
    "set with adapted MALA (dense mass matrix) and hands them over; its eps is part of what was trained, so "
    "nothing adapts it; after warmup a share (0.05) of the steps are MALA (--mixture-share)", step_size=None,
    adapts_step_size=False, warmup_kernel="mala",
    capabilities=Capabilities(step_size=False, trainable=True),
    options=(KernelOption("sampler", str, None, "learned: a sampler file written by `entropy-mcmc train-sampler` "
                                               "(required)", required=True),
             KernelOption("mixture_share", mixture_share, DEFAULT_MIXTURE_SHARE,
                          "learned: the share of steps, after warmup, that are one step of the adapted MALA of "
                          "the warmup instead of the learned kernel, chosen at random per chain and step "
                          f"(default {DEFAULT_MIXTURE_SHARE:g}; 0: the pure learned kernel)"))))


__all__ = ["Capabilities", "STATE_SPACES", "KernelSpec", "KernelOption", "register_kernel", "build_kernel",
           "get_kernel_spec", "kernel_names", "kernel_specs", "PLUGINS", "DEFAULT_MIXTURE_SHARE"]

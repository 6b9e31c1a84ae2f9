"""The kernel registry: one place for each kernel's defaults and for the order of the wrappers around it.

    kernel = build_kernel("hmc", target, num_warmup=500)   # StepSizeJitter(StepSizeAdaptation(HMC))

The CLI, the bench suite, `PyroKernel`, the NumPyro-style front door and the trainers all build
kernels here. Other packages add kernels through the `entropy_mcmc.kernels` entry point group: the
entry point is a `KernelSpec`, or a callable `(target, **options) -> TransitionKernel`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from ..plugins import first_line, iter_plugins
from .adaptation import StepSizeAdaptation
from .base import TransitionKernel
from .chees import ChEESAdaptation, ChEESHMC
from .handoff import WarmupHandoff
from .hmc import HMC
from .jitter import StepSizeJitter
from .langevin import UnadjustedLangevin
from .mala import MALA
from .mixture import MixtureKernel
from .nuts import NUTS
from .rwm import RandomWalkMetropolis


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

    state_space: the states it moves: "real" (R^d), "binary" ({0, 1}^d), "phase" (complex units, a CAP-RBM's
        layer) or "categorical" (cluster labels); it runs only on a target declaring the same `state_space`
        (`Target.state_space` is "real"; a target object without the attribute is not checked).
    needs_gradient: it calls the target's gradient.
    step_size, mass_matrix: it has a step size / a mass matrix that warmup can tune.
    exact: its stationary distribution is the target (MH-corrected or exact Gibbs); False for ULA, annealing.
    trainable: it carries a model trained for the target (the learned sampler); a trainer that knows how trains
        it in its loop, `PyroKernel` trains it at setup.
    schedule_option: the option naming the number of steps its schedule spans (annealed Langevin's anneal
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

    build: `(target, **options) -> TransitionKernel`; gets `step_size` when one is known.
    help: one line for `--help` and `entropy-mcmc list`.
    step_size: initial step size (None: the kernel's own, e.g. a trained sampler's eps).
    target_accept: the acceptance rate step-size adaptation aims at.
    adapts_step_size: whether warmup adapts the step size (False for a trained learned sampler).
    adapts_mass: the default mass-matrix adaptation: False, "diag" or "dense".
    step_size_jitter: default jitter after warmup (HMC: 0.5, see BENCHMARKS.md).
    options: the builder's own keywords the CLI exposes.
    warmup_kernel: a registry kernel that runs the warmup instead (adapted as its own spec says, with the
        `target_accept`, `adapt_mass` and `per_chain` given to `build_kernel`) and then hands the chains to
        this one (`WarmupHandoff`); for a kernel that cannot adapt and may not move outside the typical
        set, the trained learned sampler. Such a spec may have a `mixture_share` option: after warmup, each
        step is one of the (frozen) warmup kernel with that probability (`MixtureKernel`).
    source: "built-in", or the distribution a plugin came from.
    capabilities: what the kernel needs and offers (`Capabilities`); a plugin that declares none is taken as
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
PLUGIN_ERRORS: Dict[str, str] = {}
_plugins_loaded = False


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


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for name, obj, source in iter_plugins("entropy_mcmc.kernels", PLUGIN_ERRORS):
        if name in _KERNELS and _KERNELS[name] is obj:
            continue  # a module of this package registered it at import
        if name in _KERNELS:
            PLUGIN_ERRORS[name] = f"kernel name {name!r} is taken by {_KERNELS[name].source}; plugin from {source} ignored"
            continue
        if not isinstance(obj, KernelSpec) and not callable(obj):
            PLUGIN_ERRORS[name] = f"entry point is a {type(obj).__name__}, not a KernelSpec or a callable"
            continue
        spec = obj if isinstance(obj, KernelSpec) else KernelSpec(build=obj, help=first_line(obj))
        if spec.source == "built-in":
            spec = dataclasses.replace(spec, source=source)
        _KERNELS[name] = spec


def kernel_names() -> List[str]:
    """Every kernel `build_kernel` knows, built-in and plugged in."""
    _load_plugins()
    return sorted(_KERNELS)


def kernel_specs() -> Dict[str, KernelSpec]:
    _load_plugins()
    return dict(sorted(_KERNELS.items()))


def get_kernel_spec(name: str) -> KernelSpec:
    if name not in _KERNELS:
        _load_plugins()
    if name not in _KERNELS:
        broken = f" (plugin {name!r} failed to load: {PLUGIN_ERRORS[name]})" if name in PLUGIN_ERRORS else ""
        raise ValueError(f"unknown kernel {name!r}{broken}; known kernels: {', '.join(kernel_names())}")
    return _KERNELS[name]


def build_kernel(name: Union[str, KernelSpec], target, *, num_warmup: int = 0, target_accept: Optional[float] = None,
                 step_size: Optional[float] = None, adapt_mass: Union[None, bool, str] = None,
                 jitter: Optional[float] = None, per_chain: bool = False, **kernel_options) -> TransitionKernel:
    """The kernel `name` (a registry name, or a `KernelSpec` not in the registry) on `target`, wrapped as its spec says: `StepSizeAdaptation` when it adapts and there
    is a warmup, then `StepSizeJitter` when the jitter is positive. None means the spec's default.

    A spec with a `warmup_kernel` (`learned`) comes back as `WarmupHandoff(MixtureKernel(warmup kernel, kernel,
    mixture_share), warmup kernel)`: `target_accept`, `adapt_mass` and `per_chain` then go to the warmup kernel,
    `step_size` and `jitter` to the kernel; no mixture with a zero share, no handoff without warmup.

    Raises ValueError for an unknown name, an option the kernel cannot honour (mass adaptation without a mass
    matrix, a jitter outside [0, 1)), and TypeError for a builder that does not return a TransitionKernel.
    """
    spec = name if isinstance(name, KernelSpec) else get_kernel_spec(name)
    spec.capabilities.check_target(name if isinstance(name, str) else getattr(spec.build, "__name__", "kernel"),
                                   target)
    if isinstance(num_warmup, bool) or int(num_warmup) != num_warmup or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
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
        raise TypeError(f"the builder of kernel {getattr(spec.build, '__name__', name)!r} returned a {type(kernel).__name__}, "
                        "not an entropy_mcmc TransitionKernel")
    base = kernel.base
    mass = spec.adapts_mass if adapt_mass is None else adapt_mass
    if mass is True:
        mass = "diag"
    if mass not in (False, None, "diag", "dense"):
        raise ValueError(f"adapt_mass must be False, True, 'diag' or 'dense', got {adapt_mass!r}")
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


register_kernel("rwm", KernelSpec(RandomWalkMetropolis, "random-walk Metropolis", target_accept=0.234,
                                  capabilities=Capabilities(needs_gradient=False)))
# MALA adapts a dense preconditioner by default: on German BLR (64 chains, 500 warmup + 1000 draws, seed 1)
# a diagonal one leaves max R-hat at 1.04 and min ESS 1642, a dense one 1.007 and 9211 (BENCHMARKS.md).
register_kernel("mala", KernelSpec(MALA, "Metropolis-adjusted Langevin, preconditioned by an adapted dense mass "
                                   "matrix", target_accept=0.574, adapts_mass="dense",
                                   capabilities=Capabilities(mass_matrix=True)))
# NUTS with Stan's defaults: dual averaging toward 0.8, a diagonal mass matrix from the windows, no jitter
register_kernel("nuts", KernelSpec(NUTS, "the No-U-Turn sampler (multinomial, generalized U-turn criterion), "
                                   "vectorized over chains, adapted diagonal mass matrix", target_accept=0.8,
                                   adapts_mass="diag", capabilities=Capabilities(mass_matrix=True),
                                   options=(KernelOption("max_tree_depth", _positive_int, 10,
                                                         "NUTS: at most 2^D - 1 leapfrog steps per transition "
                                                         "(default 10)"),)))


PATH_LENGTH_ADAPTATIONS = ("none", "chees")


def hmc(target, step_size=0.1, num_steps: int = 10, adapt_path_length: str = "none", max_num_steps: int = 1000,
        **options) -> TransitionKernel:
    """HMC with `num_steps` leapfrog steps; with `adapt_path_length="chees"`, ChEES-HMC (`samplers.chees`): the
    number of steps drawn from a jittered trajectory length that starts at `num_steps` step sizes, is tuned by the
    ChEES criterion over the chains during warmup (`ChEESAdaptation`) and is capped at `max_num_steps` steps."""
    if adapt_path_length not in PATH_LENGTH_ADAPTATIONS:
        raise ValueError(f"adapt_path_length must be one of {', '.join(PATH_LENGTH_ADAPTATIONS)}, "
                         f"got {adapt_path_length!r}")
    if adapt_path_length == "none":
        return HMC(target, step_size, num_steps, **options)
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    length = num_steps * float(torch.as_tensor(step_size, dtype=torch.float64).mean())
    return ChEESAdaptation(ChEESHMC(target, step_size, length, max_num_steps=max_num_steps, **options))


HMC_OPTIONS = (KernelOption("num_steps", _positive_int, 10,
                            "hmc: leapfrog steps per transition (default 10); with --adapt-path-length chees the "
                            "initial trajectory length in step sizes (chees-hmc: default 1)", flag="--leapfrog-steps"),
               KernelOption("adapt_path_length", str, "none",
                            "hmc: 'chees' draws each transition's leapfrog steps from a jittered trajectory length "
                            "tuned during warmup by the ChEES criterion over the chains (Hoffman et al. 2021), "
                            "'none' keeps --leapfrog-steps fixed (hmc: default none; chees-hmc: chees)",
                            choices=PATH_LENGTH_ADAPTATIONS),
               KernelOption("max_num_steps", _positive_int, 1000,
                            "hmc with --adapt-path-length chees, chees-hmc: at most this many leapfrog steps per "
                            "transition (default 1000)", flag="--max-leapfrog-steps"))
HMC_SPEC = register_kernel("hmc", KernelSpec(hmc, "HMC, fixed number of leapfrog steps (or ChEES-tuned jittered "
                                             "lengths: --adapt-path-length chees), adapted diagonal mass matrix",
                                             target_accept=0.8, adapts_mass="diag", step_size_jitter=0.5,
                                             options=HMC_OPTIONS, capabilities=Capabilities(mass_matrix=True)))
# ChEES-HMC as BlackJAX's chees_adaptation: hmc with --adapt-path-length chees, starting from one leapfrog step,
# the step size aimed at 0.651 (here the mean acceptance over the chains), no step-size jitter on top of the
# Halton jitter of the length; a diagonal mass matrix from Stan's windows
register_kernel("chees-hmc", dataclasses.replace(
    HMC_SPEC, help="HMC with jittered trajectory lengths tuned by the ChEES criterion over the chains (Hoffman et "
    "al. 2021), adapted diagonal mass matrix: hmc --adapt-path-length chees as BlackJAX sets it up",
    target_accept=0.651, step_size_jitter=0.0,
    options=tuple(dataclasses.replace(o, default={"num_steps": 1, "adapt_path_length": "chees"}.get(o.name, o.default))
                  for o in HMC_OPTIONS)))
register_kernel("ula", KernelSpec(UnadjustedLangevin, "unadjusted Langevin (no accept step: biased by O(s^2), "
                                  "fixed step size)", step_size=0.01, adapts_step_size=False,
                                  capabilities=Capabilities(exact=False)))

__all__ = ["Capabilities", "STATE_SPACES", "KernelSpec", "KernelOption", "register_kernel", "build_kernel",
           "get_kernel_spec", "kernel_names",
           "kernel_specs", "PLUGIN_ERRORS"]

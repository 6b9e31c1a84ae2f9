"""Targets: U(x) = -log p(x) over `[chains, *event]`, and a registry by name.

Other packages add targets through the `entropy_mcmc.targets` entry point group: the entry point
is a callable returning a `Target` (a factory or a `Target` subclass taking no arguments). It is loaded when its
name is asked for; `target_names` reads the names from the installed metadata, `target_sources` loads them all.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, Optional

from ..plugins import PluginGroup, first_line
from .base import LogDensity, Target
from .funnel import Funnel
from .gaussian import Gaussian, GaussianMixture, ill_conditioned_gaussian, strongly_correlated_gaussian
from ..datasets import DATASETS, load_dataset
from .logistic_regression import LogisticRegression


def _mixture2():
    import torch

    return GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.5, name="mog2")


_REGISTRY: Dict[str, Callable[[], Target]] = {
    "icg50": lambda: ill_conditioned_gaussian(50),
    "scg2": strongly_correlated_gaussian,
    "funnel1-100": lambda: Funnel(100, 1.0),
    "funnel3-20": lambda: Funnel(20, 3.0),
    "mog2": _mixture2,
    **{name: (lambda n=name: LogisticRegression.from_dataset(n)) for name in DATASETS},
}


_SOURCES: Dict[str, str] = {name: "built-in" for name in _REGISTRY}
GROUP = "entropy_mcmc.targets"
PLUGINS = PluginGroup(GROUP)


def register_target(name: str, factory: Callable[[], Target], source: str = "user") -> None:
    """Make `get_target(name)` (and `--target NAME`) build `factory()`."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"a target name must be a non-empty word, got {name!r}")
    if not callable(factory):
        raise TypeError(f"register_target needs a callable returning a Target, got {type(factory).__name__}")
    _REGISTRY[name] = factory
    _SOURCES[name] = source


def _load_plugins(only: Optional[str] = None) -> None:
    """Register the entry point named `only`, or every one when None; each at most once."""
    for name, obj, source in PLUGINS.load(only):
        if name in _REGISTRY:
            PLUGINS.errors[name] = f"target name {name!r} is taken by {_SOURCES[name]}; plugin from {source} ignored"
        elif not callable(obj):
            PLUGINS.errors[name] = f"entry point is a {type(obj).__name__}, not a callable returning a Target"
        else:
            register_target(name, obj, source)


def target_sources() -> Dict[str, tuple]:
    """name -> (source, one-line description) for every registered target, plugins included."""
    _load_plugins()
    return {n: (_SOURCES[n], first_line(_REGISTRY[n]) if _SOURCES[n] != "built-in" else "")
            for n in sorted(_REGISTRY)}


_FUNNEL = re.compile(r"funnel(\d+(?:\.\d+)?)-(\d+)")
_ICG = re.compile(r"icg(\d+)")


def target_names():
    """Names `get_target` accepts (plus the patterns `icg<d>` and `funnel<sigma>-<d>`); a plugin's name comes from
    its metadata (nothing is imported), and one that failed to load is left out."""
    if PLUGINS.all_loaded:
        return sorted(_REGISTRY)
    return sorted(set(_REGISTRY) | set(PLUGINS.names()))


def check_target_name(name: str) -> str:
    """`name` if `get_target` accepts it, else a `ValueError` naming what it accepts; builds nothing."""
    if name in _REGISTRY or _FUNNEL.fullmatch(name) or _ICG.fullmatch(name):
        return name
    _load_plugins(name)
    if name in _REGISTRY:
        return name
    if name in PLUGINS.errors:
        raise ValueError(f"target plugin {name!r} failed to load: {PLUGINS.errors[name]}")
    raise ValueError(f"unknown target {name!r}; known targets: {', '.join(target_names())}, "
                     "or the patterns icg<d> and funnel<sigma>-<d>")


def get_target(name: str) -> Target:
    """A target by registry name: icg50, scg2, funnel1-100, funnel3-20, mog2, german, australian, heart."""
    check_target_name(name)
    if name in _REGISTRY:
        target = _REGISTRY[name]()
        if not isinstance(target, Target):
            raise TypeError(f"target {name!r} ({_SOURCES[name]}) built a {type(target).__name__}, not a Target")
        return target
    m = _FUNNEL.fullmatch(name)
    if m:
        return Funnel(int(m.group(2)), float(m.group(1)))
    return ill_conditioned_gaussian(int(_ICG.fullmatch(name).group(1)))


__all__ = ["Target", "LogDensity", "register_target", "target_sources", "PLUGINS", "Gaussian", "GaussianMixture",
           "Funnel", "LogisticRegression", "load_dataset",
           "ill_conditioned_gaussian", "strongly_correlated_gaussian", "get_target", "target_names",
           "check_target_name"]

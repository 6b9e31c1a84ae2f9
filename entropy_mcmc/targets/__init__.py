"""Targets: U(x) = -log p(x) over `[chains, *event]`, and a registry by name."""
from __future__ import annotations

import re
from typing import Callable, Dict

from .base import Target
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


_FUNNEL = re.compile(r"funnel(\d+(?:\.\d+)?)-(\d+)")
_ICG = re.compile(r"icg(\d+)")


def target_names():
    """Names `get_target` accepts (plus the patterns `icg<d>` and `funnel<sigma>-<d>`)."""
    return sorted(_REGISTRY)


def check_target_name(name: str) -> str:
    """`name` if `get_target` accepts it, else a `ValueError` naming what it accepts; builds nothing."""
    if name in _REGISTRY or _FUNNEL.fullmatch(name) or _ICG.fullmatch(name):
        return name
    raise ValueError(f"unknown target {name!r}; known targets: {', '.join(target_names())}, "
                     "or the patterns icg<d> and funnel<sigma>-<d>")


def get_target(name: str) -> Target:
    """A target by registry name: icg50, scg2, funnel1-100, funnel3-20, mog2, german, australian, heart."""
    check_target_name(name)
    if name in _REGISTRY:
        return _REGISTRY[name]()
    m = _FUNNEL.fullmatch(name)
    if m:
        return Funnel(int(m.group(2)), float(m.group(1)))
    return ill_conditioned_gaussian(int(_ICG.fullmatch(name).group(1)))


__all__ = ["Target", "Gaussian", "GaussianMixture", "Funnel", "LogisticRegression", "load_dataset",
           "ill_conditioned_gaussian", "strongly_correlated_gaussian", "get_target", "target_names",
           "check_target_name"]

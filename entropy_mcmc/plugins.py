"""Python entry points through which other packages add kernels (`entropy_mcmc.kernels`) and targets
(`entropy_mcmc.targets`). A plugin that fails to load is reported by name and does not stop the others."""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Callable, Dict, Iterator, Tuple


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded."""


def iter_plugins(group: str, errors: Dict[str, str]) -> Iterator[Tuple[str, object, str]]:
    """`(name, loaded object, source)` for each entry point of `group` that loads; failures go to `errors`
    (name -> message) and are warned about once."""
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} {dist.version}" if dist is not None else ep.value
        try:
            obj = ep.load()
        except Exception as err:  # a broken plugin must not stop the others
            message = f"{type(err).__name__}: {err}"
            if errors.get(ep.name) != message:
                warnings.warn(f"{group} plugin {ep.name!r} ({ep.value}) failed to load: {message}", PluginWarning,
                              stacklevel=3)
            errors[ep.name] = message
            continue
        yield ep.name, obj, source


def first_line(obj: Callable) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""

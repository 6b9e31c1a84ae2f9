"""Python entry points through which other packages add kernels (`entropy_mcmc.kernels`) and targets
(`entropy_mcmc.targets`). Names come from the installed metadata without importing anything; an entry point is
loaded when its name is asked for (or when every plugin is listed). A plugin that fails to load is reported by
name and does not stop the others."""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import AbstractSet, Callable, Dict, Iterator, List, Optional, Tuple


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded."""


def plugin_names(group: str) -> List[str]:
    """The names of the installed entry points of `group`, read from their metadata: no plugin is imported."""
    return sorted({ep.name for ep in entry_points(group=group)})


def iter_plugins(group: str, errors: Dict[str, str], name: Optional[str] = None,
                 skip: AbstractSet[str] = frozenset()) -> Iterator[Tuple[str, object, str]]:
    """`(name, loaded object, source)` for each entry point of `group` (only those called `name` when given, none
    in `skip`) that loads; failures go to `errors` (name -> message) and are warned about once."""
    for ep in entry_points(group=group) if name is None else entry_points(group=group, name=name):
        if ep.name in skip:
            continue
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

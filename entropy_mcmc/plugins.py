"""Python entry points through which other packages add kernels (`entropy_mcmc.kernels`) and targets
(`entropy_mcmc.targets`). Names come from the installed metadata without importing anything; an entry point is
loaded when its name is asked for (or when every plugin is listed). A plugin that fails to load is reported by
name and does not stop the others."""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded."""


class PluginGroup:
    """The entry points of one group. Names come from the installed metadata without importing anything; each
    entry point is loaded at most once, by name when asked for or all when listed. `errors` maps a name to why its
    plugin was refused (failed to load, or rejected by the registry)."""

    def __init__(self, group: str):
        self.group = group
        self.errors: Dict[str, str] = {}
        self.all_loaded = False
        self._tried: Set[str] = set()  # loaded (or failed) by name

    def names(self) -> List[str]:
        """The installed names that have not failed, read from metadata: no plugin is imported."""
        return sorted({ep.name for ep in entry_points(group=self.group)} - set(self.errors))

    def load(self, only: Optional[str] = None) -> Iterator[Tuple[str, object, str]]:
        """`(name, loaded object, source)` for the entry point `only`, or every one when None, skipping those
        loaded before. A failure goes to `errors` and is warned about once; it does not stop the others."""
        if self.all_loaded or only in self._tried:
            return
        skip = set(self._tried)
        if only is None:
            self.all_loaded = True
        else:
            self._tried.add(only)
        for ep in entry_points(group=self.group) if only is None else entry_points(group=self.group, name=only):
            if ep.name in skip:
                continue
            dist = getattr(ep, "dist", None)
            source = f"{dist.name} {dist.version}" if dist is not None else ep.value
            try:
                obj = ep.load()
            except Exception as err:  # a broken plugin must not stop the others
                message = f"{type(err).__name__}: {err}"
                if self.errors.get(ep.name) != message:
                    warnings.warn(f"{self.group} plugin {ep.name!r} ({ep.value}) failed to load: {message}",
                                  PluginWarning, stacklevel=3)
                self.errors[ep.name] = message
                continue
            yield ep.name, obj, source


def first_line(obj: Callable) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""

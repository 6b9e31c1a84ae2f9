"""PEP 562 lazy exports: a package's public names imported from their modules on first use, so that importing the
package stays light."""
import importlib
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, modules: Dict[str, str], namespace: dict) -> Tuple[Callable, Callable[[], List[str]]]:
    """`(__getattr__, __dir__)` for `package`: reading `name` imports submodule `modules[name]` once and keeps the
    value in `namespace` (the package's `globals()`)."""

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{modules[name]}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(modules))

    return __getattr__, __dir__

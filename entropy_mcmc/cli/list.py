"""`entropy-mcmc list`: the kernels and targets installed, where each came from, the kernels' defaults and
their declared capabilities."""
from __future__ import annotations

import argparse

HELP = "list the kernels and targets installed (built-in and plugged in), with their sources and defaults"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args) -> int:
    from ..samplers.registry import PLUGINS as KERNEL_PLUGINS, kernel_specs
    from ..targets import PLUGINS as TARGET_PLUGINS, target_sources

    print("kernels:")
    for name, spec in kernel_specs().items():
        defaults = ", ".join(f"{k}={v}" for k, v in spec.defaults().items())
        print(f"  {name:<14} [{spec.source}] {spec.help}" + (f" ({defaults})" if defaults else ""))
        print(f"  {'':<14} capabilities: {spec.capabilities.describe()}")
    print("targets:")
    for name, (source, doc) in target_sources().items():
        print(f"  {name:<14} [{source}]" + (f" {doc}" if doc else ""))
    print("  (also the patterns icg<d> and funnel<sigma>-<d>)")
    for kind, plugins in (("kernel", KERNEL_PLUGINS), ("target", TARGET_PLUGINS)):
        for name, message in sorted(plugins.errors.items()):
            print(f"broken {kind} plugin {name}: {message}")
    return 0

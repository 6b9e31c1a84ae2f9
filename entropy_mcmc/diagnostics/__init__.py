"""Diagnostics: ESS (bulk/tail), R-hat, MCSE and efficiency rates through ArviZ; the lean summary table; proposal
entropy, acceptance rate; trace, autocorrelation and pair plots.

The plots and proposal statistics are imported on first use, so that `diagnostics` loads without torch.
"""
from .ess import efficiency, ess, expected_squared_jump, mcse, rhat
from .summary import lean_summary

_LAZY = {"proposal_entropy": "proposal", "acceptance_rate": "proposal", "autocorrelation": "plots",
         "energy_grid": "plots", "plot_trace": "plots", "plot_autocorr": "plots", "plot_pair": "plots"}
__all__ = ["ess", "rhat", "mcse", "efficiency", "expected_squared_jump", "lean_summary", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

"""Diagnostics: ESS (bulk/tail), R-hat, MCSE and efficiency rates through ArviZ; the lean summary table; proposal
entropy, acceptance rate; trace, autocorrelation and pair plots.

The plots and proposal statistics are imported on first use, so that `diagnostics` loads without torch.
"""
from ..lazy import lazy_exports as _lazy_exports
from .ess import efficiency, ess, expected_squared_jump, mcse, rhat
from .summary import lean_summary

_LAZY = {"proposal_entropy": "proposal", "acceptance_rate": "proposal", "autocorrelation": "plots",
         "energy_grid": "plots", "plot_trace": "plots", "plot_autocorr": "plots", "plot_pair": "plots"}
__all__ = ["ess", "rhat", "mcse", "efficiency", "expected_squared_jump", "lean_summary", *_LAZY]

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())

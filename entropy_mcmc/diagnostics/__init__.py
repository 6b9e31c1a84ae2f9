"""Diagnostics: ESS (bulk/tail), R-hat, MCSE and efficiency rates through ArviZ; proposal entropy,
acceptance rate; trace, autocorrelation and pair plots."""
from .ess import efficiency, ess, expected_squared_jump, mcse, rhat
from .plots import autocorrelation, energy_grid, plot_autocorr, plot_pair, plot_trace
from .proposal import acceptance_rate, proposal_entropy

__all__ = ["ess", "rhat", "mcse", "efficiency", "expected_squared_jump", "proposal_entropy", "acceptance_rate",
           "autocorrelation", "energy_grid", "plot_trace", "plot_autocorr", "plot_pair"]

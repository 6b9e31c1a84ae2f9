"""Diagnostics: ESS (bulk/tail), R-hat, MCSE and efficiency rates through ArviZ; plots."""
from .ess import efficiency, ess, expected_squared_jump, mcse, rhat

__all__ = ["ess", "rhat", "mcse", "efficiency", "expected_squared_jump"]

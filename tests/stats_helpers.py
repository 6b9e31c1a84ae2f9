"""Moment checks with tolerances from the Monte Carlo standard error (ArviZ MCSE)."""
import numpy as np
import torch

from entropy_mcmc.diagnostics import mcse


def moment_z_scores(draws: torch.Tensor, mean, var):
    """|sample mean - mean| / MCSE and |sample second central moment - var| / MCSE, per dimension.

    The second moment is taken about the known mean, so its MCSE is the MCSE of the
    mean of (x - mean)^2, which ArviZ estimates from the same autocorrelated draws.
    """
    x = draws.detach().double().flatten(2).numpy()
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    var = np.asarray(var, dtype=np.float64).reshape(-1)
    sq = (x - mean) ** 2
    z_mean = np.abs(x.mean((0, 1)) - mean) / mcse(x)
    z_var = np.abs(sq.mean((0, 1)) - var) / mcse(sq)
    return z_mean, z_var

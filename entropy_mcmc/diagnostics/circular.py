"""Diagnostics for complex units of modulus 0 or 1 (CAP-RBM draws): activity, circular mean and spread, ESS.

A phase is only defined while its unit is active, so the circular statistics use the active draws,
and the ESS is that of |z| cos(theta) and |z| sin(theta) (the real and imaginary parts of z), which
are defined for every draw.
"""
from __future__ import annotations

import numpy as np

from .ess import ess


def _complex_draws(z) -> np.ndarray:
    if hasattr(z, "detach"):
        z = z.detach().cpu().numpy()
    z = np.asarray(z)
    if not np.iscomplexobj(z) or z.ndim < 2:
        raise TypeError(f"expected complex draws [chains, draws, ...], got dtype {z.dtype} and shape {z.shape}")
    return z.reshape(z.shape[0], z.shape[1], -1)


def circular_summary(draws):
    """One row per unit of complex draws `[chains, draws, *units]` (torch or numpy).

    Columns: `p_active` (fraction of draws with |z| = 1), `mean_phase` (circular mean of the active
    phases, radians), `resultant` (mean resultant length R of the active phases, 1 = concentrated,
    0 = uniform), `circular_spread` (circular standard deviation sqrt(-2 log R)), `ess_cos` and
    `ess_sin` (bulk ESS of Re z and Im z), `ess_active` (bulk ESS of |z|).
    """
    import pandas as pd

    z = _complex_draws(draws)
    mod = np.abs(z)
    amp = (mod > 0.5).astype(np.float64)
    n_active = amp.sum((0, 1))
    total = np.where(amp > 0, z / np.where(amp > 0, mod, 1.0), 0).sum((0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        resultant = np.where(n_active > 0, np.abs(total) / np.maximum(n_active, 1), np.nan)
        spread = np.sqrt(-2 * np.log(resultant))
    return pd.DataFrame({
        "p_active": amp.mean((0, 1)),
        "mean_phase": np.where(n_active > 0, np.angle(total), np.nan),
        "resultant": resultant,
        "circular_spread": spread,
        "ess_cos": ess(z.real, "bulk"),
        "ess_sin": ess(z.imag, "bulk"),
        "ess_active": ess(amp, "bulk"),
    })


__all__ = ["circular_summary"]

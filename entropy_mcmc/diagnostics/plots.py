"""Matplotlib plots of a run: trace, autocorrelation, and a pair scatter against the target's energy contours.

Every function takes draws `[chains, draws, *event]` (torch, numpy, or a
`SampleResult`), returns a `matplotlib.figure.Figure` and saves it when `path`
is given. Figures are built with `Figure()` rather than pyplot, so no backend is
selected and no global figure registry is touched; Jupyter's inline backend displays them.
Dimensions are flat indices into the event.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .ess import as_draws_array

# Energy levels U - min U = k^2 / 2: the k-sigma contours of a Gaussian, k = 1..5.
_SIGMA_LEVELS = tuple(0.5 * k * k for k in range(1, 6))


def _dims(dims, d: int, default: int) -> list:
    dims = list(range(min(d, default))) if dims is None else [int(i) for i in np.atleast_1d(dims)]
    bad = [i for i in dims if not 0 <= i < d]
    if bad or not dims:
        raise ValueError(f"dims must be flat event indices in [0, {d}), got {dims}")
    return dims


def _labels(dims, names) -> list:
    if names is None:
        return [f"x[{i}]" for i in dims]
    if len(names) != len(dims):
        raise ValueError(f"got {len(names)} names for {len(dims)} dims")
    return list(names)


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _finish(fig, path):
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def autocorrelation(draws, max_lag: Optional[int] = None, mean=None, var=None, unbiased: bool = False) -> np.ndarray:
    """Autocorrelation rho_k, k = 0..max_lag (default: all lags), per chain and dimension: `[chains, lags, dim]`.

    rho_k = c_k / v with c_k = sum_t (x_t - m)(x_{t+k} - m) / T, computed by FFT (Geyer 1992; the
    estimator ArviZ's ESS starts from). m and v default to each chain's own mean and variance (c_0);
    given `mean` and `var` (per dimension, e.g. the target's true moments) they replace them.
    `unbiased=True` divides by T - k instead of T (the A-NICE-MC estimator of `autocorr_ess`).
    """
    x = as_draws_array(draws)
    n = x.shape[1]
    max_lag = n - 1 if max_lag is None else int(min(max_lag, n - 1))
    m = x.mean(1, keepdims=True) if mean is None else np.asarray(mean, dtype=np.float64).reshape(1, 1, -1)
    xc = x - m
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(xc, n=size, axis=1)
    lagged = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, : max_lag + 1]
    acov = lagged / ((n - np.arange(max_lag + 1))[None, :, None] if unbiased else n)
    v = acov[:, :1] if var is None else np.asarray(var, dtype=np.float64).reshape(1, 1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(v > 0, acov / np.where(v > 0, v, 1.0), 0.0)


def plot_trace(draws, dims: Optional[Sequence[int]] = None, names: Optional[Sequence[str]] = None,
               max_chains: int = 8, path=None, title: Optional[str] = None):
    """Per dimension: the trace of up to `max_chains` chains (left) and the pooled histogram (right)."""
    x = as_draws_array(draws)
    dims = _dims(dims, x.shape[2], 4)
    labels = _labels(dims, names)
    fig = _new_figure((10, 1.9 * len(dims) + 0.6))
    axes = fig.subplots(len(dims), 2, squeeze=False, gridspec_kw={"width_ratios": [3, 1]})
    t = np.arange(x.shape[1])
    shown = min(max_chains, x.shape[0])
    for row, (i, label) in enumerate(zip(dims, labels)):
        ax_t, ax_h = axes[row]
        for c in range(shown):
            ax_t.plot(t, x[c, :, i], lw=0.7, alpha=0.8)
        ax_t.set_ylabel(label)
        ax_t.set_xlim(0, max(len(t) - 1, 1))
        ax_h.hist(x[:, :, i].ravel(), bins=40, orientation="horizontal", color="0.4", density=True)
        ax_h.sharey(ax_t)
        ax_h.tick_params(labelleft=False)
        if row == 0:
            ax_t.set_title(f"trace ({shown} of {x.shape[0]} chains)")
            ax_h.set_title("marginal (all chains)")
    axes[-1, 0].set_xlabel("draw")
    axes[-1, 1].set_xlabel("density")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_autocorr(draws, dims: Optional[Sequence[int]] = None, names: Optional[Sequence[str]] = None,
                  max_lag: int = 50, path=None, title: Optional[str] = None):
    """Per dimension: autocorrelation against lag, each chain in grey and the chain mean in black."""
    x = as_draws_array(draws)
    dims = _dims(dims, x.shape[2], 4)
    labels = _labels(dims, names)
    rho = autocorrelation(x[:, :, dims], max_lag)
    lags = np.arange(rho.shape[1])
    ncols = min(len(dims), 4)
    nrows = -(-len(dims) // ncols)
    fig = _new_figure((3.2 * ncols, 2.6 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for k, label in enumerate(labels):
        ax = axes[k // ncols, k % ncols]
        for c in range(min(rho.shape[0], 16)):
            ax.plot(lags, rho[c, :, k], color="0.7", lw=0.6)
        ax.plot(lags, rho[:, :, k].mean(0), color="k", lw=1.5, label="mean over chains")
        ax.axhline(0.0, color="tab:red", lw=0.8)
        ax.set_title(label)
        ax.set_xlabel("lag")
        ax.set_ylim(-0.3, 1.05)
        if k % ncols == 0:
            ax.set_ylabel("autocorrelation")
    for k in range(len(dims), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _limits(v: np.ndarray, pad: float = 0.1) -> Tuple[float, float]:
    lo, hi = np.percentile(v, [0.5, 99.5])
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    w = hi - lo
    return float(lo - pad * w), float(hi + pad * w)


def energy_grid(target, dims: Tuple[int, int], xlim, ylim, fixed=None, num: int = 120):
    """U on a `num x num` grid over dims (i, j), the other coordinates held at `fixed`.

    A 2-d target is evaluated as is (x = (x_i, x_j)); otherwise `fixed` (event shape
    or flat) gives the other coordinates, defaulting to `target.mean`. Returns
    the grid axes and U `[num, num]` (rows follow the second dimension).
    """
    gx = np.linspace(*xlim, num)
    gy = np.linspace(*ylim, num)
    mx, my = np.meshgrid(gx, gy)
    d = target.dim
    if d == 2:
        base, (i, j) = np.zeros(2), (0, 1)
    else:
        i, j = dims
        if fixed is None:
            fixed = target.mean
        if fixed is None:
            raise ValueError(f"{target.name} has no known mean: pass `fixed`, the values of the other coordinates")
        base = np.asarray(fixed.detach().cpu().numpy() if isinstance(fixed, torch.Tensor) else fixed,
                          dtype=np.float64).reshape(-1)
        if base.size != d:
            raise ValueError(f"fixed must hold {d} values (the target's event), got {base.size}")
    pts = np.repeat(base[None], mx.size, 0)
    pts[:, i], pts[:, j] = mx.ravel(), my.ravel()
    x = torch.as_tensor(pts, dtype=torch.float64).reshape(-1, *target.event_shape)
    with torch.no_grad():
        u = target.energy(x).cpu().numpy().reshape(mx.shape)
    return gx, gy, u


def plot_pair(draws, target=None, dims: Tuple[int, int] = (0, 1), fixed=None, names=None,
              max_points: int = 3000, xlim=None, ylim=None, diverging=None, ax=None, path=None,
              title: Optional[str] = None, seed: int = 0):
    """Scatter of dims (i, j) of the draws over contours of the target's energy.

    Contours are at U - min U = k^2/2, k = 1..5 (the k-sigma ellipses of a
    Gaussian). A 2-d `target` is drawn as is, so passing the known marginal of the
    pair (e.g. `Funnel(2, sigma)` for (x_0, x_i) of any funnel) shows the exact
    marginal; a target of the draws' dimension is drawn as the slice through `fixed`
    (default: the target's mean, else the mean of the draws), i.e. the conditional
    density, narrower than the marginal when the coordinates are correlated.
    `diverging` (`[chains, draws]` bools, taken from a `SampleResult` by default)
    marks divergent transitions in red. At most `max_points` draws are shown.
    """
    x = as_draws_array(draws)
    if diverging is None and hasattr(draws, "stats"):
        diverging = draws.stats.get("diverging")
    if len(dims) != 2:
        raise ValueError(f"dims must be two flat event indices, got {dims}")
    i, j = _dims(dims, x.shape[2], 2)
    labels = _labels([i, j], names)
    pi, pj = x[:, :, i].ravel(), x[:, :, j].ravel()
    rng = np.random.default_rng(seed)
    keep = rng.permutation(pi.size)[:max_points]
    xlim = _limits(pi) if xlim is None else xlim
    ylim = _limits(pj) if ylim is None else ylim

    fig = None
    if ax is None:
        fig = _new_figure((5.2, 4.6))
        ax = fig.subplots()
    subtitle = f"{min(max_points, pi.size)} of {pi.size} draws"
    if target is not None:
        if target.dim not in (2, x.shape[2]):
            raise ValueError(f"target has {target.dim} dimensions; expected 2 (the pair's density) "
                             f"or the draws' {x.shape[2]}")
        slice_at = fixed
        if target.dim != 2 and slice_at is None and target.mean is None:
            slice_at = x.reshape(-1, x.shape[2]).mean(0)
            subtitle += "; slice at draws' mean"
        elif target.dim != 2:
            subtitle += "; slice at " + ("given values" if fixed is not None else "target mean")
        gx, gy, u = energy_grid(target, (i, j), xlim, ylim, slice_at)
        finite = np.isfinite(u)
        if finite.any():
            du = np.where(finite, u - u[finite].min(), np.inf)
            from matplotlib import colormaps

            colors = colormaps["viridis"](np.linspace(0.0, 0.75, len(_SIGMA_LEVELS)))
            cs = ax.contour(gx, gy, du, levels=_SIGMA_LEVELS, colors=colors, linewidths=1.2, zorder=3)
            ax.clabel(cs, fmt={lv: f"{np.sqrt(2 * lv):.0f}σ" for lv in _SIGMA_LEVELS}, fontsize=7)
    ax.scatter(pi[keep], pj[keep], s=4, alpha=0.35, color="tab:orange", lw=0, zorder=2, label="draws")
    if diverging is not None:
        dv = diverging.detach().cpu().numpy() if isinstance(diverging, torch.Tensor) else np.asarray(diverging)
        dv = dv.astype(bool).ravel()
        if dv.shape == pi.shape and dv.any():
            ax.scatter(pi[dv], pj[dv], s=12, color="tab:red", zorder=4, label=f"divergent ({dv.sum()})")
            ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title if title is not None else subtitle, fontsize=9)
    fig = ax.figure if fig is None else fig
    return _finish(fig, path)


__all__ = ["autocorrelation", "plot_trace", "plot_autocorr", "plot_pair", "energy_grid"]

"""Densities nobody tuned for, and how close a sampler's points come to them (`entropy-mcmc bench --suite unseen`).

    d = make_density("spiral", seed=1234)           # kinds: mixture, rings, spiral, heavy
    x = d.sample(2000, np.random.default_rng(0))    # [2000, 2] exact draws, in data coordinates
    d.mode_of(x)                                    # each point's mode, -1 outside every mode
    s = score(d, model_samples, reference=d.sample(2000, rng), baseline=two_sample_baseline(d, 2000, range(5)))

Every density is 2-D, drawn from `seed`: a mixture of K modes with unequal weights (each at least 0.1, the largest
at least twice the smallest) and unequal widths, built in a canonical frame and moved to data coordinates by
`offset + scale * z` with a per-axis scale 10^-2 .. 10^3 (the axes up to 10x apart) and an offset of 20 to 100
canonical units per axis, so the data lie far from the unit box. Modes:

- mixture: 3-5 Gaussians (widths 0.3-2, axis ratios up to 3, rotated);
- heavy: 2-3 Student-t components (2.5 to 5 degrees of freedom), shaped like the Gaussians;
- rings: 2-4 concentric circles, spiral: 2-3 interleaved arms of an Archimedean spiral; a point of a curve mode is
  drawn uniformly in the curve's parameter (the angle), plus isotropic Gaussian noise (sd 0.03-0.16).

Inside a mode: for a Gaussian, within its 99% ellipse (squared Mahalanobis distance <= chi2_2(0.99)); for a
Student-t, within its 99% region (squared Mahalanobis distance / 2 <= F_{2,nu}(0.99)); for a curve, within
3.035 noise sds of the curve (the radius holding 99% of the 2-D noise, so >= 99% of exact draws, the distance to the
curve being at most the noise's length). Modes are drawn until their regions are apart by a margin, so each point
lies in at most one. An exact sampler thus puts 99% (Gaussian, Student-t) or more (curves) of its points in modes.

Metrics, in the canonical frame (the affine map is the user's units, not the density's shape): `mmd`, the unbiased
squared MMD with a Gaussian kernel at the median-heuristic bandwidth of the reference; `two_sample_baseline`, the
MMD between two exact samples of the same size, as the square root of the root mean square of their `mmd` over
seeds (the estimate's noise: its mean is 0); `mode_shares`, the share of points in modes, each mode's share of them
against its weight, and scipy's chi-square test. `score` checks the goals of issue 23 (`GOALS`): MMD =
sqrt(max(mmd, 0)) <= 3x the baseline (so mmd <= 9x the noise level, which an exact sampler passes), >= 95% of the
points in modes, each mode's share within 20% (relative) of its weight.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

KINDS = ("mixture", "rings", "spiral", "heavy")
GOALS = {"mmd_ratio": 3.0, "in_modes": 0.95, "share_error": 0.2}
CURVE_BAND = math.sqrt(-2 * math.log(0.01))  # 3.035: the radius holding 99% of a standard 2-D normal


@dataclasses.dataclass(frozen=True)
class Gaussian:
    mean: np.ndarray   # [2]
    chol: np.ndarray   # [2, 2] lower Cholesky factor of the covariance
    df: float = math.inf  # finite: a Student-t with this scale matrix

    def radius(self) -> float:
        """The Mahalanobis radius of the 99% region."""
        from scipy import stats

        q = stats.chi2.ppf(0.99, 2) if math.isinf(self.df) else 2 * stats.f.ppf(0.99, 2, self.df)
        return math.sqrt(q)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, 2)) @ self.chol.T
        if not math.isinf(self.df):
            z /= np.sqrt(rng.chisquare(self.df, n) / self.df)[:, None]
        return self.mean + z

    def distance(self, z: np.ndarray) -> np.ndarray:
        """Mahalanobis distance over the 99% radius: <= 1 inside the mode."""
        from scipy.linalg import solve_triangular

        u = solve_triangular(self.chol, (z - self.mean).T, lower=True)
        return np.sqrt((u * u).sum(0)) / self.radius()

    def extent(self) -> float:
        """The radius of a circle around the mean holding the 99% region."""
        return self.radius() * float(np.linalg.svd(self.chol, compute_uv=False)[0])


@dataclasses.dataclass(frozen=True)
class Curve:
    """A circle (`turn == 0`: radius `start`) or an arm of the spiral r = start + theta - phase, theta - phase in
    [0, length], around the origin; points uniform in the angle plus isotropic noise of sd `sd`."""
    start: float
    length: float
    phase: float
    sd: float
    turn: float  # the radius gained per radian: 0 for a circle

    def point(self, t: np.ndarray) -> np.ndarray:
        r = self.start + self.turn * t
        return np.stack([r * np.cos(t + self.phase), r * np.sin(t + self.phase)], -1)

    def polyline(self) -> np.ndarray:
        """Points along the curve at most sd / 20 apart."""
        longest = (self.start + self.turn * self.length) * self.length + self.length
        return self.point(np.linspace(0.0, self.length, int(20 * longest / self.sd) + 2))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.point(self.length * rng.random(n)) + self.sd * rng.standard_normal((n, 2))

    def distance(self, z: np.ndarray) -> np.ndarray:
        """Distance to the curve over CURVE_BAND noise sds: <= 1 inside the mode."""
        if self.turn == 0:
            d = np.abs(np.linalg.norm(z, axis=-1) - self.start)
        else:
            from scipy.spatial import cKDTree

            d = cKDTree(self.polyline()).query(z)[0]
        return d / (CURVE_BAND * self.sd)


@dataclasses.dataclass(frozen=True)
class Density:
    """A 2-D density of `kind` drawn from `seed`: modes (`Gaussian` or `Curve`) with `weights`, in data
    coordinates `offset + scale * z` of the canonical frame's z."""
    kind: str
    seed: int
    weights: np.ndarray
    modes: Tuple
    offset: np.ndarray
    scale: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.seed}"

    def canonical(self, x) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.offset) / self.scale

    def sample(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """`[n, 2]` exact draws in data coordinates."""
        counts = generator.multinomial(n, self.weights)
        z = np.concatenate([m.draw(c, generator) for m, c in zip(self.modes, counts)])
        return self.offset + self.scale * z[generator.permutation(n)]

    def mode_of(self, x) -> np.ndarray:
        """The index of the mode each point of `x` `[n, 2]` lies in, -1 when in none (or not finite)."""
        z = self.canonical(x)
        finite = np.isfinite(z).all(-1)
        d = np.full((len(z), len(self.modes)), np.inf)
        for k, m in enumerate(self.modes):
            d[finite, k] = m.distance(z[finite])
        return np.where(d.min(1) <= 1.0, d.argmin(1), -1)

    def describe(self) -> str:
        shape = {"mixture": "Gaussians", "heavy": "Student-t components", "rings": "rings", "spiral": "spiral arms"}
        return (f"{self.name}: {len(self.modes)} {shape[self.kind]}, weights "
                f"{'/'.join(f'{w:.3f}' for w in self.weights)}, scale {'/'.join(f'{s:.3g}' for s in self.scale)}, "
                f"offset {'/'.join(f'{o:.3g}' for o in self.offset)}")


def _weights(k: int, rng: np.random.Generator) -> np.ndarray:
    while True:
        w = rng.dirichlet(np.full(k, 2.0))
        if w.min() >= 0.1 and w.max() >= 2 * w.min():
            return w


def _blobs(k: int, rng: np.random.Generator, df: Optional[Iterable[float]]) -> Tuple[Gaussian, ...]:
    """k Gaussians (or Student-t's with degrees of freedom `df`) whose 99% regions are 25% apart at least."""
    shapes = []
    for nu in [math.inf] * k if df is None else df:
        width, ratio, angle = 10 ** rng.uniform(-0.5, 0.3), rng.uniform(1.0, 3.0), rng.uniform(0, np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        cov = rot @ np.diag([width ** 2, (width / ratio) ** 2]) @ rot.T
        shapes.append((np.linalg.cholesky(cov), float(nu)))
    extents = [Gaussian(np.zeros(2), c, nu).extent() for c, nu in shapes]
    box = 1.5 * sum(extents)
    while True:
        means = []
        for e in extents:
            for _ in range(1000):
                m = rng.uniform(-box, box, 2)
                if all(np.linalg.norm(m - p) >= 1.25 * (e + q) for p, q in zip(means, extents)):
                    means.append(m)
                    break
        if len(means) == k:
            return tuple(Gaussian(m, c, nu) for m, (c, nu) in zip(means, shapes))
        box *= 1.5


def _curves(kind: str, k: int, rng: np.random.Generator) -> Tuple[Curve, ...]:
    """k rings or spiral arms whose bands are 25% apart at least (spiral: redrawn until they are)."""
    from scipy.spatial import cKDTree

    sds = 10 ** rng.uniform(-1.5, -0.8, k)
    bands = CURVE_BAND * sds
    if kind == "rings":
        radii = [rng.uniform(0.5, 1.5)]
        for i in range(1, k):
            radii.append(radii[-1] + 1.25 * (bands[i - 1] + bands[i]) + rng.uniform(0.3, 1.0))
        return tuple(Curve(r, 2 * np.pi, 0.0, s, 0.0) for r, s in zip(radii, sds))
    while True:
        start, length = rng.uniform(1.0, 1.5), rng.uniform(1.5 * np.pi, 3 * np.pi)
        arms = tuple(Curve(start, length, 2 * np.pi * i / k, s, 1.0) for i, s in enumerate(sds))
        lines = [cKDTree(a.polyline()) for a in arms]
        if all(lines[i].query(arms[j].polyline())[0].min() >= 1.25 * (bands[i] + bands[j])
               for i in range(k) for j in range(i)):
            return arms
        sds = sds * 0.8


def make_density(kind: str, seed: int) -> Density:
    """The 2-D density of `kind` (one of KINDS) drawn from `seed` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown density kind {kind!r}; expected one of {', '.join(KINDS)}")
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    if kind == "mixture":
        modes = _blobs(int(rng.integers(3, 6)), rng, None)
    elif kind == "heavy":
        k = int(rng.integers(2, 4))
        modes = _blobs(k, rng, rng.uniform(2.5, 5.0, k))
    else:
        modes = _curves(kind, int(rng.integers(2, 5) if kind == "rings" else rng.integers(2, 4)), rng)
    weights = _weights(len(modes), rng)
    scale = 10 ** rng.uniform(-2, 3) * 10 ** (rng.uniform(-0.5, 0.5) * np.array([1.0, -1.0]))
    offset = scale * rng.uniform(20, 100, 2) * rng.choice([-1.0, 1.0], 2)
    return Density(kind, int(seed), weights, modes, offset, scale)


def mmd(x, y, bandwidth: Optional[float] = None) -> float:
    """The unbiased squared MMD between samples `x` and `y` (a reference), Gaussian kernel of `bandwidth`,
    by default the median pairwise distance of the reference points (the median heuristic)."""
    from ..ebm_training.metrics import median_bandwidth, mmd as mmd2

    y = np.asarray(y, dtype=np.float64)
    h = median_bandwidth(y[: len(y) // 2], y[len(y) // 2:]) if bandwidth is None else bandwidth
    return mmd2(np.asarray(x, dtype=np.float64), y, bandwidth=h)


def two_sample_baseline(density: Density, n: int, seeds: Iterable) -> float:
    """The MMD between two exact samples of `n` points: the square root of the root mean square, over numpy
    `seeds`, of their `mmd` (canonical frame), the estimate's noise level at that size."""
    values = []
    for s in seeds:
        rng = np.random.default_rng(s)
        values.append(mmd(density.canonical(density.sample(n, rng)), density.canonical(density.sample(n, rng))))
    return float(np.mean(np.square(values)) ** 0.25)


def mode_shares(density: Density, x) -> Dict[str, object]:
    """The share of the points of `x` inside modes (`in_modes`), the count and share (`counts`, `shares`) of those
    in each mode, the largest relative error of a share against its weight (`share_error`), and scipy's chi-square
    test of the counts against the weights (`chi2`, `p_value`)."""
    from scipy import stats

    idx = density.mode_of(x)
    counts = np.bincount(idx[idx >= 0], minlength=len(density.modes))
    total = counts.sum()
    if total == 0:
        return {"in_modes": 0.0, "counts": counts, "shares": np.full(len(counts), np.nan), "share_error": math.inf,
                "chi2": math.inf, "p_value": 0.0}
    shares = counts / total
    test = stats.chisquare(counts, density.weights * total)
    return {"in_modes": float(total / len(idx)), "counts": counts, "shares": shares,
            "share_error": float(np.abs(shares / density.weights - 1).max()), "chi2": float(test.statistic),
            "p_value": float(test.pvalue)}


def score(density: Density, samples, reference, baseline: float) -> Dict[str, object]:
    """`mode_shares` of `samples`, their `mmd` to exact `reference` points, the ratio of the MMD
    (sqrt(max(mmd, 0))) to `baseline` (`two_sample_baseline` at the reference's size), each goal of GOALS met or
    not, and `passed` (all three).
    Non-finite samples count as outside every mode and are left out of the MMD."""
    samples = np.asarray(samples, dtype=np.float64)
    finite = samples[np.isfinite(samples).all(-1)]
    m = mmd(density.canonical(finite), density.canonical(reference)) if len(finite) >= 2 else math.nan
    ratio = math.nan if math.isnan(m) else math.sqrt(max(m, 0.0)) / baseline
    out = {"mmd2": m, "baseline": baseline, "mmd_ratio": ratio, "nonfinite": int(len(samples) - len(finite)),
           **mode_shares(density, samples)}
    out["mmd_ok"] = bool(out["mmd_ratio"] <= GOALS["mmd_ratio"])
    out["in_modes_ok"] = bool(out["in_modes"] >= GOALS["in_modes"])
    out["shares_ok"] = bool(out["share_error"] <= GOALS["share_error"])
    out["passed"] = out["mmd_ok"] and out["in_modes_ok"] and out["shares_ok"]
    return out


__all__ = ["make_density", "Density", "Gaussian", "Curve", "mmd", "two_sample_baseline", "mode_shares", "score",
           "KINDS", "GOALS", "CURVE_BAND"]

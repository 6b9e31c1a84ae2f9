"""The chain runner: warmup, sampling, per-draw records and statistics, timing, convergence warnings, ArviZ.

Every step counts: with `thin > 1` a recorded draw carries the mean acceptance of the
steps since the last draw, `diverging` is true if any of them diverged, and
`num_divergences`, the gradient counts and the stuck-chain counts cover every step. Each `info.extras` entry a
kernel returns, and the step size each step actually used, are kept per recorded draw.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from .base import Seed, TransitionKernel, kernel_name, state_tensors

# Names ArviZ and Pyro users expect in `sample_stats`.
_STAT_NAMES = {"acceptance_prob": "acceptance_rate", "accepted": "is_accepted"}


class ConvergenceWarning(UserWarning):
    """A run ended with divergences, R-hat above 1.01 or a bulk ESS below 100 per chain."""


@dataclass
class SampleResult:
    """Recorded draws `{name: [chains, draws, ...]}` and per-draw statistics `[chains, draws]` of one run.

    `draws` is the variable `var_name` (the position, for the kernels that record one).
    `num_divergences` counts divergent transitions over every sampling step, thinned or not;
    `longest_stuck[c]` is chain c's longest run of sampling steps without an accepted move, and
    `stuck_at_end[c]` the steps since its last accepted move when sampling ended.
    """

    samples: Dict[str, torch.Tensor]
    stats: Dict[str, torch.Tensor]
    warmup_time: float
    sampling_time: float
    num_grad_evals_warmup: int
    num_grad_evals: int
    num_steps: int
    thin: int = 1
    final_state: Optional[object] = None
    kernel_name: str = ""
    warmup_acceptance: float = float("nan")
    attrs: Dict[str, object] = field(default_factory=dict)
    num_divergences: int = 0
    warmup_samples: Optional[Dict[str, torch.Tensor]] = None
    warmup_stats: Optional[Dict[str, torch.Tensor]] = None
    var_name: str = "x"
    longest_stuck: Optional[torch.Tensor] = None
    stuck_at_end: Optional[torch.Tensor] = None

    @property
    def draws(self) -> torch.Tensor:
        if self.var_name in self.samples:
            return self.samples[self.var_name]
        if len(self.samples) == 1:
            return next(iter(self.samples.values()))
        raise AttributeError(f"this run recorded {sorted(self.samples)}; read them from `samples`")

    @property
    def num_chains(self) -> int:
        return next(iter(self.samples.values())).shape[0]

    @property
    def num_draws(self) -> int:
        return next(iter(self.samples.values())).shape[1]

    @property
    def total_time(self) -> float:
        return self.warmup_time + self.sampling_time

    @property
    def acceptance_rate(self) -> float:
        return float(self.stats["acceptance_prob"].float().mean())

    def efficiency(self) -> Dict[str, float]:
        """Min-over-dimensions ESS and its rates per MH step, gradient and second (`diagnostics.efficiency`)."""
        from ..diagnostics import efficiency

        return efficiency(self.draws, steps=self.num_steps * self.num_chains,
                          grad_evals=self.num_grad_evals * self.num_chains, warmup_time=self.warmup_time,
                          sampling_time=self.sampling_time, acceptance=self.acceptance_rate,
                          divergences=self.num_divergences)

    def to_arviz(self, var_name: Optional[str] = None):
        """ArviZ `InferenceData`: `posterior` (a complex variable v as `v_amplitude` and `v_phase`) and
        `sample_stats` (acceptance_rate, step_size, energy, lp, diverging, and every kernel extra);
        `warmup_posterior` and `warmup_sample_stats` when the warmup was collected."""
        import arviz as az

        names = {self.var_name: var_name} if var_name else {}
        groups = {"posterior": _arviz_variables(self.samples, names), "sample_stats": _arviz_stats(self.stats)}
        if self.warmup_samples is not None:
            groups["warmup_posterior"] = _arviz_variables(self.warmup_samples, names)
            groups["warmup_sample_stats"] = _arviz_stats(self.warmup_stats)
        attrs = {"sampling_time": self.sampling_time, "warmup_time": self.warmup_time,
                 "num_grad_evals": self.num_grad_evals, "num_grad_evals_warmup": self.num_grad_evals_warmup,
                 "kernel": self.kernel_name, "thin": self.thin, "num_divergences": self.num_divergences,
                 **{k: v for k, v in self.attrs.items() if isinstance(v, (int, float, str))}}
        idata = az.from_dict(**groups, save_warmup=self.warmup_samples is not None)
        # ArviZ 0.2x drops `attrs` given to from_dict: set them on the groups themselves
        for group in (idata.posterior, idata.sample_stats):
            group.attrs.update(attrs)
        return idata

    def summary(self, **kwargs):
        """The ArviZ summary table (pandas DataFrame): mean, sd, HDI, MCSE, ESS bulk/tail, R-hat."""
        import arviz as az

        return az.summary(self.to_arviz(), **kwargs)

    def convergence_warnings(self, summary=None) -> List[str]:
        """What Stan and NumPyro warn about, with the numbers: divergent transitions, max R-hat above
        1.01, min bulk ESS below 100 per chain; and, by name, chains that accepted no move over the last
        10% of their steps. `summary` (an ArviZ summary of this run) saves recomputing."""
        out = []
        steps = self.num_steps * self.num_chains
        if self.stuck_at_end is not None:
            window = max(1, -(-self.num_steps // 10))
            stuck = (self.stuck_at_end >= window).nonzero().flatten().tolist()
            if stuck:
                names = ", ".join(str(c) for c in stuck[:10])
                names += f" and {len(stuck) - 10} more" if len(stuck) > 10 else ""
                longest = int(self.longest_stuck[stuck].max())
                out.append(f"chain{'s' if len(stuck) > 1 else ''} {names} of {self.num_chains} accepted no move over "
                           f"the last 10% of the {self.num_steps} steps (longest run without a move: {longest} "
                           "steps): stuck where the kernel cannot move")
        if self.num_divergences:
            out.append(f"{self.num_divergences} of {steps} transitions diverged "
                       f"({100.0 * self.num_divergences / steps:.2g}%); the draws may be biased")
        if self.num_draws < 4:
            return out
        if summary is not None:
            rhat, ess_bulk = summary["r_hat"].to_numpy(), summary["ess_bulk"].to_numpy()
        else:
            import numpy as np

            from ..diagnostics import ess, rhat as rhat_fn

            real = [_real_draws(v) for v in self.samples.values()]
            real = [r for r in real if r is not None]
            if not real:
                return out
            x = np.concatenate([r.reshape(r.shape[0], r.shape[1], -1) for r in real], axis=2)
            rhat, ess_bulk = rhat_fn(x), ess(x, "bulk")
        import numpy as np

        max_rhat, min_ess = np.nanmax(rhat, initial=np.nan), np.nanmin(ess_bulk, initial=np.nan)
        if max_rhat > 1.01:
            out.append(f"max R-hat is {max_rhat:.3g} > 1.01: the chains have not converged to one distribution")
        if min_ess < 100 * self.num_chains:
            out.append(f"min bulk ESS is {min_ess:.0f}, below 100 per chain ({100 * self.num_chains} for "
                       f"{self.num_chains} chains): estimates are unreliable")
        return out


def _real_draws(v: torch.Tensor):
    """Draws as a float numpy array for R-hat and ESS (complex: amplitude and phase side by side)."""
    if v.is_complex():
        v = torch.stack([v.abs(), v.angle()], -1)
    if v.dtype == torch.bool:
        v = v.to(torch.float64)
    return v.detach().cpu().double().numpy()


def _arviz_variables(samples: Dict[str, torch.Tensor], rename: Dict[str, Optional[str]]):
    out = {}
    for name, v in samples.items():
        name = rename.get(name) or name
        if v.is_complex():
            out[f"{name}_amplitude"] = v.abs().detach().cpu().numpy()
            out[f"{name}_phase"] = v.angle().detach().cpu().numpy()
        else:
            out[name] = v.detach().cpu().numpy()
    return out


def _arviz_stats(stats: Dict[str, torch.Tensor]):
    out = {_STAT_NAMES.get(k, k): v.detach().cpu().numpy() for k, v in stats.items()}
    if "energy" in out:
        out["lp"] = -out.pop("potential_energy", out["energy"])
    return out


def _progress(iterable, enabled: bool, desc: str, total: int):
    if not enabled:
        return iterable, None
    from tqdm.auto import tqdm

    # disable=None: shown on a terminal, silent when output is captured (tests, CI logs)
    bar = tqdm(iterable, desc=desc, total=total, disable=None, leave=False, dynamic_ncols=True)
    return bar, bar


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


class _Recorder:
    """Collects a kernel's records and step statistics over one phase, thinning without losing events."""

    def __init__(self, kernel: TransitionKernel, var_name: str, thin: int, num_chains: int):
        self.kernel, self.var_name, self.thin, self.chains = kernel, var_name, thin, num_chains
        self.samples: Dict[str, list] = {}
        self.stats: Dict[str, list] = {}
        self.grads = 0
        self._divergences = None
        self.stuck = torch.zeros(num_chains, dtype=torch.int64)
        self.longest_stuck = torch.zeros(num_chains, dtype=torch.int64)
        self._acc_sum = None
        self._div_any = None

    def step(self, i: int, state, info) -> bool:
        """Account for step `i` (0-based); record it if it ends a thinning window. Returns whether it did."""
        self.grads += info.num_grad_evals
        d = info.diverging.sum()
        self._divergences = d if self._divergences is None else self._divergences + d
        if self.stuck.device != info.accepted.device:
            self.stuck = self.stuck.to(info.accepted.device)
            self.longest_stuck = self.longest_stuck.to(info.accepted.device)
        self.stuck = torch.where(info.accepted, 0, self.stuck + 1)
        self.longest_stuck = torch.maximum(self.longest_stuck, self.stuck)
        if self.thin > 1:
            acc, div = info.acceptance_prob.detach(), info.diverging
            self._acc_sum = acc if self._acc_sum is None else self._acc_sum + acc
            self._div_any = div if self._div_any is None else self._div_any | div
            if (i + 1) % self.thin:
                return False
            acc, div = self._acc_sum / self.thin, self._div_any
            self._acc_sum = self._div_any = None
        else:
            acc, div = info.acceptance_prob, info.diverging
        rec = self.kernel.record(state)
        if isinstance(rec, torch.Tensor):
            rec = {self.var_name: rec}
        for name, value in rec.items():
            self.samples.setdefault(name, []).append(value.detach())
        row = {"acceptance_prob": acc, "accepted": info.accepted, "diverging": div}
        energy = getattr(state, "energy", None)
        if energy is not None:
            row["energy"] = energy
        for name, value in info.extras.items():
            if name == "energy" and energy is not None:
                row["potential_energy"] = energy
            row[name] = value
        if info.step_size is not None:
            s = torch.as_tensor(info.step_size)
            row["step_size"] = s.to(torch.float64).expand(self.chains) if s.dim() == 0 else s
        for name, value in row.items():
            self.stats.setdefault(name, []).append(value.detach())
        return True

    @property
    def divergences(self) -> int:
        return 0 if self._divergences is None else int(self._divergences)

    def result(self):
        samples = {k: torch.stack(v, 1) for k, v in self.samples.items()}
        stats = {k: torch.stack([t.to(v[0].device) for t in v], 1) for k, v in self.stats.items()}
        return samples, stats


def sample(kernel: TransitionKernel, init, num_draws: int, num_warmup: int = 0, thin: int = 1,
           progress: bool = True, seed: Seed = None, collect_warmup: bool = False, var_name: str = "x",
           warn: bool = True) -> SampleResult:
    """Run `num_warmup` adaptation steps then `num_draws * thin` steps, recording every `thin`-th state
    (`num_draws=0`: warmup only; the result then holds no draws, and its `final_state` is where warmup ended).

    Args:
        kernel: any `TransitionKernel` (wrap it in `StepSizeAdaptation` to tune it during warmup).
        init: initial positions `[chains, *event]` (given to `kernel.init`), or a state.
        seed: reseeds the kernel's generator, so the same seed gives the same draws bitwise.
        progress: show a tqdm bar on a terminal (never in captured output).
        collect_warmup: also keep the warmup draws and statistics (ArviZ `warmup_posterior`).
        var_name: the name of the recorded variable when `kernel.record` returns one tensor.
        warn: issue a `ConvergenceWarning` for divergences, R-hat > 1.01 or bulk ESS < 100 per chain.
    """
    for name, v, lo in (("num_draws", num_draws, 0), ("num_warmup", num_warmup, 0), ("thin", thin, 1)):
        if isinstance(v, bool) or int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    first = init if isinstance(init, torch.Tensor) else state_tensors(init)[0]
    if seed is not None:
        kernel.reseed(seed, first.device)
    state = kernel.init(init) if isinstance(init, torch.Tensor) else init
    chains = first.shape[0]

    t0 = time.perf_counter()
    kernel.start_warmup(num_warmup)
    warm = _Recorder(kernel, var_name, 1, chains)
    acc_warm = []
    it, bar = _progress(range(num_warmup), progress and num_warmup > 0, "warmup", num_warmup)
    for i in it:
        state, info = kernel.step(state)
        if collect_warmup:
            warm.step(i, state, info)
        else:
            warm.grads += info.num_grad_evals
        acc_warm.append(info.acceptance_prob.float().mean())
        if bar is not None and i % 20 == 0:
            bar.set_postfix(accept=f"{float(acc_warm[-1]):.2f}", refresh=False)
    kernel.end_warmup()
    _sync(first)
    t1 = time.perf_counter()

    rec = _Recorder(kernel, var_name, int(thin), chains)
    it, bar = _progress(range(num_draws * thin), progress, "sampling", num_draws * thin)
    for i in it:
        state, info = kernel.step(state)
        if rec.step(i, state, info) and bar is not None and i % (20 * thin) == 0:
            bar.set_postfix(accept=f"{float(info.acceptance_prob.float().mean()):.2f}", refresh=False)
    _sync(first)
    t2 = time.perf_counter()

    samples, stats = rec.result()
    warmup_samples, warmup_stats = warm.result() if collect_warmup and num_warmup > 0 else (None, None)
    result = SampleResult(
        samples=samples, stats=stats, warmup_time=t1 - t0, sampling_time=t2 - t1,
        num_grad_evals_warmup=warm.grads, num_grad_evals=rec.grads, num_steps=num_draws * thin, thin=thin,
        final_state=state, kernel_name=kernel_name(kernel),
        warmup_acceptance=float(torch.stack(acc_warm).mean()) if acc_warm else float("nan"),
        num_divergences=rec.divergences, warmup_samples=warmup_samples, warmup_stats=warmup_stats,
        longest_stuck=rec.longest_stuck.cpu(), stuck_at_end=rec.stuck.cpu(),
        var_name=var_name)
    if warn and num_draws > 0:
        for message in result.convergence_warnings():
            warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return result


__all__ = ["sample", "SampleResult", "ConvergenceWarning"]

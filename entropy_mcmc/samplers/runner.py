"""The chain runner: warmup, sampling, per-draw records and statistics, timing, convergence warnings, ArviZ.

Every step counts: with `thin > 1` a recorded draw carries the mean acceptance of the
steps since the last draw, `diverging` is true if any of them diverged, and
`num_divergences`, the gradient counts and the stuck-chain counts cover every step. Each `info.extras` entry a
kernel returns, and the step size each step actually used, are kept per recorded draw.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ..diagnostics.summary import WORK_BYTES
from .base import Seed, TransitionKernel, kernel_name, state_tensors
from .compiled import Compilation
from .stranded import StrandedCheck
from .stream import BLOCK_BYTES, STAT_BYTES, FileVariables, NetCDFWriter, default_memory_budget, write_attrs

# Names ArviZ and Pyro users expect in `sample_stats`.
_STAT_NAMES = {"acceptance_prob": "acceptance_rate", "accepted": "is_accepted"}


class ConvergenceWarning(UserWarning):
    """A run ended with divergences, R-hat above 1.01 or a bulk ESS below 100 per chain, or warmup moved stranded
    chains (`stranded`)."""


@dataclass
class SampleResult:
    """Recorded draws `{name: [chains, draws, ...]}` and per-draw statistics `[chains, draws]` of one run.

    `draws` is the variable `var_name` (the position, for the kernels that record one).
    `num_divergences` counts divergent transitions over every sampling step, thinned or not;
    `longest_stuck[c]` is chain c's longest run of sampling steps without an accepted move, and
    `stuck_at_end[c]` the steps since its last accepted move when sampling ended.
    `path`: the NetCDF file a run streamed its draws to (`sample(stream_to=...)`); `samples` and `stats` (and the
    warmup's) then read a variable whole from it on access, and `stat_mean`, `summary`, `convergence_warnings`
    read it a block at a time, within `max_memory` bytes (the run's memory budget).
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
    path: Optional[str] = None
    max_memory: float = math.inf

    @property
    def draws(self) -> torch.Tensor:
        if self.var_name in self.samples:
            return self.samples[self.var_name]
        if len(self.samples) == 1:
            return next(iter(self.samples.values()))
        raise AttributeError(f"this run recorded {sorted(self.samples)}; read them from `samples`")

    @property
    def num_chains(self) -> int:
        return self._shape()[0]

    @property
    def num_draws(self) -> int:
        return self._shape()[1]

    def _shape(self):
        name = next(iter(self.samples))
        return self.samples.shape(name) if self.path else self.samples[name].shape

    @property
    def total_time(self) -> float:
        return self.warmup_time + self.sampling_time

    @property
    def acceptance_rate(self) -> float:
        return self.stat_mean("acceptance_prob")

    def stat_mean(self, name: str) -> Optional[float]:
        """The mean of statistic `name` over chains and draws (None if not recorded)."""
        if name not in self.stats:
            return None
        return self.stats.mean(name) if self.path else float(self.stats[name].double().mean())

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
        `warmup_posterior` and `warmup_sample_stats` when the warmup was collected. The arrays are the
        recorded tensors' memory, not copies; a streamed run's are its file, opened lazily."""
        import arviz as az

        names = {self.var_name: var_name} if var_name else {}
        if self.path:
            idata = az.from_netcdf(self.path)
            groups = [g for g in ("posterior", "warmup_posterior") if g in idata.groups()]
            for old, new in names.items():  # variables and dims, as from_dict names them
                names_in = {n for g in groups for n in (*idata[g].data_vars, *idata[g].dims)}
                idata.rename({n: new + n[len(old):] for n in names_in if n == old or n.startswith(old + "_")},
                             groups=groups, inplace=True)
        else:
            groups = {"posterior": _arviz_variables(self.samples, names), "sample_stats": _arviz_stats(self.stats)}
            if self.warmup_samples is not None:
                groups["warmup_posterior"] = _arviz_variables(self.warmup_samples, names)
                groups["warmup_sample_stats"] = _arviz_stats(self.warmup_stats)
            with warnings.catch_warnings():  # ArviZ takes more chains than draws for a transposed array
                warnings.filterwarnings("ignore", "More chains", UserWarning)
                idata = az.from_dict(**groups, save_warmup=self.warmup_samples is not None)
        # ArviZ 0.2x drops `attrs` given to from_dict: set them on the groups themselves
        for group in (idata.posterior, idata.sample_stats):
            group.attrs.update(self._arviz_attrs())
        return idata

    def _arviz_attrs(self) -> Dict[str, object]:
        return {"sampling_time": self.sampling_time, "warmup_time": self.warmup_time,
                "num_grad_evals": self.num_grad_evals, "num_grad_evals_warmup": self.num_grad_evals_warmup,
                "kernel": self.kernel_name, "thin": self.thin, "num_divergences": self.num_divergences,
                **{k: v for k, v in self.attrs.items() if isinstance(v, (int, float, str))}}

    def save_attrs(self, extra: Optional[Dict[str, object]] = None) -> None:
        """Write the attributes `to_arviz` sets, and `extra` on the posterior, into the file the draws were
        streamed to (`sample` and `run_chains` do; call it after changing `attrs`)."""
        base = self._arviz_attrs()
        write_attrs(self.path, {"posterior": {**base, **(extra or {})}, "sample_stats": base})

    def summary(self, full: bool = False, var_names=None, **kwargs):
        """The summary table (pandas DataFrame), per scalar: mean, sd, MCSE of both, ESS bulk and tail, R-hat,
        ArviZ's numbers computed lean (`diagnostics.lean_summary`; a streamed run's read from its file within
        its memory budget). `full=True`: `az.summary` with HDIs, `kwargs` going to it."""
        import arviz as az

        if full:
            return az.summary(self.to_arviz(), var_names=var_names, **kwargs)
        if kwargs:
            raise TypeError(f"{sorted(kwargs)} are az.summary options: give full=True")
        from ..diagnostics.summary import lean_summary

        return lean_summary(self.to_arviz(), var_names, max_bytes=self.max_memory if self.path else None)

    def convergence_warnings(self, summary=None) -> List[str]:
        """What Stan and NumPyro warn about, with the numbers: divergent transitions, max R-hat above
        1.01, min bulk ESS below 100 per chain; and, by name, chains that accepted no move over the last
        10% of their steps. `summary` (a summary of this run) saves recomputing."""
        import numpy as np

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
        if summary is None and self.path:
            summary = self.summary()
        elif summary is None:
            from ..diagnostics.summary import scalar_stats

            rows = [scalar_stats(x) for v in self.samples.values() for x in _scalar_draws(v)]
            summary = {c: [r[c] for r in rows] for c in ("r_hat", "ess_bulk")}
        rhat, ess_bulk = np.asarray(summary["r_hat"], float), np.asarray(summary["ess_bulk"], float)
        max_rhat, min_ess = np.nanmax(rhat, initial=np.nan), np.nanmin(ess_bulk, initial=np.nan)
        if max_rhat > 1.01:
            out.append(f"max R-hat is {max_rhat:.3g} > 1.01: the chains have not converged to one distribution")
        if min_ess < 100 * self.num_chains:
            out.append(f"min bulk ESS is {min_ess:.0f}, below 100 per chain ({100 * self.num_chains} for "
                       f"{self.num_chains} chains): estimates are unreliable")
        return out


def _scalar_draws(v: torch.Tensor):
    """Each scalar's draws `[chains, draws]` as numpy, one at a time (complex: amplitude, then phase)."""
    flat = v.detach().reshape(v.shape[0], v.shape[1], -1)
    for k in range(flat.shape[2]):
        x = flat[:, :, k]
        for part in (x.abs(), x.angle()) if x.is_complex() else (x,):
            yield (part.double() if part.dtype == torch.bool else part).contiguous().cpu().numpy()


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


def _variable_sources(samples) -> Dict[str, tuple]:
    """Where `_arviz_variables` puts each recorded variable (`FileVariables` sources)."""
    return {k: ("polar", f"{k}_amplitude", f"{k}_phase") if v.is_complex() else ("plain", k)
            for k, v in samples.items()}


def _stat_sources(stats) -> Dict[str, tuple]:
    """Where `_arviz_stats` puts each statistic (`FileVariables` sources)."""
    return {k: ("neg", "lp") if k == "potential_energy" and "energy" in stats else ("plain", _STAT_NAMES.get(k, k))
            for k in stats}


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
    """Collects a kernel's records and step statistics over one phase, thinning without losing events.

    Each record is copied once, into a buffer `[chains, block, ...]` allocated at the first record: the whole
    phase (`block` = `num_draws`), or with a `writer` (`(NetCDFWriter, posterior group, stats group)`) a block of
    draws (at most `block_bytes`) that is written to the file whenever it fills.
    """

    def __init__(self, kernel: TransitionKernel, var_name: str, thin: int, num_chains: int, num_draws: int,
                 writer=None, block_bytes: float = BLOCK_BYTES):
        self.kernel, self.var_name, self.thin, self.chains = kernel, var_name, thin, num_chains
        self.num_draws, self.writer, self.count = num_draws, writer, 0
        self.block, self.block_bytes = num_draws, block_bytes
        self.samples: Dict[str, torch.Tensor] = {}
        self.stats: Dict[str, torch.Tensor] = {}
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
        if not self.count and self.writer is not None:
            per_draw = sum(v.numel() * v.element_size() for v in (*rec.values(), *row.values()))
            self.block = max(1, min(self.num_draws, int(self.block_bytes // per_draw)))
        j = self.count % self.block
        for store, values in ((self.samples, rec), (self.stats, row)):
            for name, value in values.items():
                if name not in store:
                    store[name] = value.new_empty((value.shape[0], self.block, *value.shape[1:]))
                store[name][:, j] = value.detach()
        self.count += 1
        if self.writer is not None and (j + 1 == self.block or self.count == self.num_draws):
            self._write(j + 1)
        return True

    def _write(self, n: int) -> None:
        writer, posterior, sample_stats = self.writer
        start = self.count - n
        for group, arrays in ((posterior, _arviz_variables({k: v[:, :n] for k, v in self.samples.items()}, {})),
                              (sample_stats, _arviz_stats({k: v[:, :n] for k, v in self.stats.items()}))):
            writer.write(group, start, self.num_draws, arrays)

    @property
    def divergences(self) -> int:
        return 0 if self._divergences is None else int(self._divergences)

    def result(self):
        """`(samples, stats)`: the buffers, or `FileVariables` reading them from the writer's file."""
        if self.writer is None:
            return self.samples, self.stats
        writer, posterior, sample_stats = self.writer
        return (FileVariables(writer.path, posterior, _variable_sources(self.samples)),
                FileVariables(writer.path, sample_stats, _stat_sources(self.stats)))


def sample(kernel: TransitionKernel, init, num_draws: int, num_warmup: int = 0, thin: int = 1,
           progress: bool = True, seed: Seed = None, collect_warmup: bool = False, var_name: str = "x",
           warn: bool = True, max_memory: Optional[float] = None, stream_to: Optional[str] = None,
           compile: str = "auto", restart_stranded: bool = True) -> SampleResult:
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
        max_memory: bytes of draws and statistics the run may hold (default: 3/4 of the memory available at
            the start), counted as the recorded tensors plus `stream.STAT_BYTES` per chain and draw, and the
            summary's work on one scalar (`diagnostics.summary.WORK_BYTES` per chain and draw). A run that
            needs more writes them to `stream_to` as they come, holding at most a quarter of the budget (and
            `stream.BLOCK_BYTES`) between writes; without `stream_to` it fails before the first step.
        stream_to: the NetCDF file (ArviZ InferenceData) a run over `max_memory` streams to (`result.path`).
        compile: "auto", "on" or "off": run the kernel's transitions under `torch.compile` (`samplers.compiled`:
            HMC and MALA; "auto" where it repays its compile time), said in `result.attrs["compile"]`.
        restart_stranded: partway through warmup, move chains stranded at potential energies far above the
            others' to other chains' states, with a warning (`stranded`); the moves are in
            `result.attrs["restarted_chains"]` ("chain->to" pairs).
    """
    for name, v, lo in (("num_draws", num_draws, 0), ("num_warmup", num_warmup, 0), ("thin", thin, 1)):
        if isinstance(v, bool) or int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    first = init if isinstance(init, torch.Tensor) else state_tensors(init)[0]
    if seed is not None:
        kernel.reseed(seed, first.device)
    state = kernel.init(init) if isinstance(init, torch.Tensor) else init
    chains = first.shape[0]
    budget = default_memory_budget() if max_memory is None else float(max_memory)
    record = kernel.record(state)
    per_draw = chains * STAT_BYTES + sum(v.numel() * v.element_size() for v in (
        record.values() if isinstance(record, dict) else [record]))
    # the draws and statistics, and the summary's work on one scalar of the draws
    need = per_draw * (num_draws + (num_warmup if collect_warmup else 0)) + WORK_BYTES * chains * num_draws
    writer = None
    if need > budget:
        if stream_to is None:
            raise ValueError(f"this run records {need / 2 ** 30:.3g} GiB of draws and statistics, over its memory "
                             f"budget of {budget / 2 ** 30:.3g} GiB: give a NetCDF file to stream them to as they come "
                             "(stream_to=PATH; sample --out PATH), or raise the budget (max_memory; --max-memory)")
        writer = NetCDFWriter(stream_to, chains)
    try:
        with Compilation(kernel, compile, num_warmup + num_draws * thin, first.device) as compiled:
            stranded = StrandedCheck(num_warmup, restart_stranded)
            result = _run(kernel, state, first, num_draws, num_warmup, thin, progress, collect_warmup, var_name,
                          writer, min(BLOCK_BYTES, budget / 4), stranded)
    finally:
        if writer is not None:
            writer.close()
    result.max_memory = budget
    result.attrs["compile"] = compiled.decision
    result.attrs["restarted_chains"] = " ".join(f"{c}->{to}" for c, to in stranded.moved)
    if writer is not None:
        result.path = writer.path
        result.save_attrs()
    if warn and stranded.moved:
        warnings.warn(stranded.message(chains), ConvergenceWarning, stacklevel=2)
    if warn and num_draws > 0:
        for message in result.convergence_warnings():
            warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return result


def _run(kernel, state, first, num_draws, num_warmup, thin, progress, collect_warmup, var_name, writer,
         block_bytes, stranded):
    """`sample`'s warmup and sampling from `state`, recording into memory or through `writer`."""
    chains = first.shape[0]
    t0 = time.perf_counter()
    kernel.start_warmup(num_warmup)
    warm = _Recorder(kernel, var_name, 1, chains, num_warmup,
                     None if writer is None else (writer, "warmup_posterior", "warmup_sample_stats"), block_bytes)
    acc_warm = []
    it, bar = _progress(range(num_warmup), progress and num_warmup > 0, "warmup", num_warmup)
    for i in it:
        state, info = kernel.step(state)
        if collect_warmup:
            warm.step(i, state, info)
        else:
            warm.grads += info.num_grad_evals
        state = stranded.step(i, state)
        acc_warm.append(info.acceptance_prob.float().mean())
        if bar is not None and i % 20 == 0:
            bar.set_postfix(accept=f"{float(acc_warm[-1]):.2f}", refresh=False)
    kernel.end_warmup()
    _sync(first)
    t1 = time.perf_counter()

    rec = _Recorder(kernel, var_name, int(thin), chains, num_draws,
                    None if writer is None else (writer, "posterior", "sample_stats"), block_bytes)
    it, bar = _progress(range(num_draws * thin), progress, "sampling", num_draws * thin)
    for i in it:
        state, info = kernel.step(state)
        if rec.step(i, state, info) and bar is not None and i % (20 * thin) == 0:
            bar.set_postfix(accept=f"{float(info.acceptance_prob.float().mean()):.2f}", refresh=False)
    _sync(first)
    t2 = time.perf_counter()

    samples, stats = rec.result()
    warmup_samples, warmup_stats = warm.result() if collect_warmup and num_warmup > 0 else (None, None)
    return SampleResult(
        samples=samples, stats=stats, warmup_time=t1 - t0, sampling_time=t2 - t1,
        num_grad_evals_warmup=warm.grads, num_grad_evals=rec.grads, num_steps=num_draws * thin, thin=thin,
        final_state=state, kernel_name=kernel_name(kernel),
        warmup_acceptance=float(torch.stack(acc_warm).mean()) if acc_warm else float("nan"),
        num_divergences=rec.divergences, warmup_samples=warmup_samples, warmup_stats=warmup_stats,
        longest_stuck=rec.longest_stuck.cpu(), stuck_at_end=rec.stuck.cpu(),
        var_name=var_name)


__all__ = ["sample", "SampleResult", "ConvergenceWarning"]

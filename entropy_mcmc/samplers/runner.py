"""The chain runner: warmup, sampling, per-step statistics, timing and ArviZ output."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

from .base import ChainState, Seed, TransitionKernel

# Names ArviZ and Pyro users expect in `sample_stats`.
_STAT_NAMES = {"acceptance_prob": "acceptance_rate", "diverging": "diverging", "step_size": "step_size",
               "energy": "energy", "accepted": "is_accepted"}


@dataclass
class SampleResult:
    """Draws `[chains, draws, *event]` and per-draw statistics `[chains, draws]` of one run."""

    draws: torch.Tensor
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

    @property
    def num_chains(self) -> int:
        return self.draws.shape[0]

    @property
    def num_draws(self) -> int:
        return self.draws.shape[1]

    @property
    def total_time(self) -> float:
        return self.warmup_time + self.sampling_time

    @property
    def acceptance_rate(self) -> float:
        return float(self.stats["acceptance_prob"].float().mean())

    @property
    def num_divergences(self) -> int:
        return int(self.stats["diverging"].sum())

    def to_arviz(self, var_name: str = "x"):
        """ArviZ `InferenceData` with `posterior` and `sample_stats` (acceptance_rate, step_size, energy, diverging)."""
        import arviz as az

        draws = self.draws.detach().cpu().numpy()
        stats = {_STAT_NAMES.get(k, k): v.detach().cpu().numpy() for k, v in self.stats.items()}
        if "energy" in stats:
            stats["lp"] = -stats.pop("potential_energy", stats["energy"])
        attrs = {"sampling_time": self.sampling_time, "warmup_time": self.warmup_time,
                 "num_grad_evals": self.num_grad_evals, "num_grad_evals_warmup": self.num_grad_evals_warmup,
                 "kernel": self.kernel_name, "thin": self.thin,
                 **{k: v for k, v in self.attrs.items() if isinstance(v, (int, float, str))}}
        idata = az.from_dict(posterior={var_name: draws}, sample_stats=stats)
        # ArviZ 0.2x drops `attrs` given to from_dict: set them on the groups themselves
        for group in (idata.posterior, idata.sample_stats):
            group.attrs.update(attrs)
        return idata

    def summary(self, **kwargs):
        """The ArviZ summary table (pandas DataFrame): mean, sd, HDI, MCSE, ESS bulk/tail, R-hat."""
        import arviz as az

        return az.summary(self.to_arviz(), **kwargs)


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


def sample(kernel: TransitionKernel, init, num_draws: int, num_warmup: int = 0, thin: int = 1,
           progress: bool = True, seed: Seed = None) -> SampleResult:
    """Run `num_warmup` adaptation steps then `num_draws * thin` steps, keeping every `thin`-th state.

    Args:
        kernel: any `TransitionKernel` (wrap it in `StepSizeAdaptation` to tune it during warmup).
        init: initial positions `[chains, *event]`, or a state from `kernel.init`.
        seed: reseeds the kernel's generator, so the same seed gives the same draws bitwise.
        progress: show a tqdm bar on a terminal (never in captured output).
    """
    for name, v, lo in (("num_draws", num_draws, 1), ("num_warmup", num_warmup, 0), ("thin", thin, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if seed is not None:
        pos = init.position if isinstance(init, ChainState) else init
        kernel.reseed(seed, pos.device)
    state = init if not isinstance(init, torch.Tensor) else kernel.init(init)
    x0 = state.position

    t0 = time.perf_counter()
    kernel.start_warmup(num_warmup)
    grads_warmup, acc_warm = 0, []
    it, bar = _progress(range(num_warmup), progress and num_warmup > 0, "warmup", num_warmup)
    for i in it:
        state, info = kernel.step(state)
        grads_warmup += info.num_grad_evals
        acc_warm.append(info.acceptance_prob.float().mean())
        if bar is not None and i % 20 == 0:
            bar.set_postfix(accept=f"{float(acc_warm[-1]):.2f}", refresh=False)
    kernel.end_warmup()
    _sync(x0)
    t1 = time.perf_counter()

    chains = x0.shape[0]
    draws = torch.empty((num_draws,) + tuple(x0.shape), dtype=x0.dtype, device=x0.device)
    stats: Dict[str, list] = {}
    step_size = kernel.step_size_value if hasattr(kernel, "step_size_value") else None
    grads = 0
    it, bar = _progress(range(num_draws * thin), progress, "sampling", num_draws * thin)
    for i in it:
        state, info = kernel.step(state)
        grads += info.num_grad_evals
        if (i + 1) % thin:
            continue
        j = (i + 1) // thin - 1
        draws[j] = state.position
        rec = {"acceptance_prob": info.acceptance_prob, "accepted": info.accepted, "diverging": info.diverging}
        energy = info.extras.get("energy", getattr(state, "energy", None))
        if energy is not None:
            rec["energy"] = energy
            if "energy" in info.extras and getattr(state, "energy", None) is not None:
                rec["potential_energy"] = state.energy
        for name, value in rec.items():
            stats.setdefault(name, []).append(value.detach())
        if bar is not None and j % 20 == 0:
            bar.set_postfix(accept=f"{float(info.acceptance_prob.float().mean()):.2f}", refresh=False)
    _sync(x0)
    t2 = time.perf_counter()

    out = {k: torch.stack(v, 1) for k, v in stats.items()}
    if step_size is not None:
        out["step_size"] = torch.as_tensor(step_size, dtype=torch.float64).expand(chains)[:, None] \
            .expand(chains, num_draws).clone()
    return SampleResult(
        draws=draws.movedim(0, 1), stats=out, warmup_time=t1 - t0, sampling_time=t2 - t1,
        num_grad_evals_warmup=grads_warmup, num_grad_evals=grads, num_steps=num_draws * thin, thin=thin,
        final_state=state, kernel_name=_kernel_name(kernel),
        warmup_acceptance=float(torch.stack(acc_warm).mean()) if acc_warm else float("nan"))


def _kernel_name(kernel) -> str:
    inner = getattr(kernel, "kernel", None)
    name = type(kernel).__name__
    return f"{name}({_kernel_name(inner)})" if isinstance(inner, TransitionKernel) else name


__all__ = ["sample", "SampleResult"]

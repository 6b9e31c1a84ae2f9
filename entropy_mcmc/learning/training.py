"""Training of a proposal model by the proposal-entropy objective (thesis eqs. 4.4-4.5, appendix C.2).

For x from the target (exact samples where the target has them, else a bootstrap buffer
that the sampler itself keeps updating) and one z0 ~ N(0, I) per x, maximize

    L(x) = min(0, log A(x, x')) + beta * log|dz^N/dz^0|,
    log A = U(x) - U(x') + log q(x|x') - log q(x'|x).

The sign of the entropy term follows from eq. 4.4: H(X'|X = x) = H(z0) + E log|dz^N/dz^0|
(+ d log eps), so maximizing acceptance times exp(beta H) adds +beta log|det| (the printed
eq. 4.5 has a minus sign). beta is adapted multiplicatively toward a target acceptance
rate (Titsias & Dellaportas 2019): log beta += beta_lr * (mean acceptance - target).
Gradients flow through the target gradients inside the flow (no stop-gradient). Adam
(0.9, 0.999), gradient clipping at L2 norm 10, cosine learning-rate schedule from `lr`
to `min_lr`.

`objective="l2"` maximizes the expected squared jump E[A(x, x') |x' - x|^2] instead
(the L2HMC objective, for the contrast of Figure 4.1).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from ..samplers.adaptation import StepSizeAdaptation
from ..samplers.learned.kernel import LearnedSampler, TargetFunctions, propose_move, save_proposal
from ..samplers.learned.proposal import LearnedProposal, LearnedProposalConfig, ProposalModel, base_entropy
from ..samplers.mala import MALAKernel
from ..samplers.metropolis import metropolis_accept
from ..targets.base import Target

OBJECTIVES = ("entropy", "l2")


@dataclass
class SamplerTrainConfig:
    """Optimization settings (Table C.1 gives lr, min_lr and target_accept per target).

    Parameters
    ----------
    sample_source
        "exact" (fresh target samples each step), "bootstrap" (a buffer of
        `buffer_size` chains moved by the sampler after every step; appendix C.2 uses a
        buffer as large as the batch), or "auto" (exact when the target can sample).
    buffer_size
        Chains in the bootstrap buffer, at least `batch_size` (None: `batch_size`). A larger
        buffer gives each step a minibatch of `batch_size` distinct chains drawn uniformly from it,
        and only those chains move.
    buffer_init_steps
        MALA steps (step size adapted to acceptance 0.6) that take the
        bootstrap buffer from `init` to the typical set before training starts. A model with a
        preconditioner (`LearnedProposalConfig.precondition`) is fitted to the buffer's positions
        over the second half of these steps, or to exact target samples where they exist.
    log_accept_floor
        C > 0 makes the acceptance term min(0, log A) continue below -c as
        -c (1 + log(-log A / c)), same value and slope at -c, so a proposal with log A ~ -1e17
        (MALA in the Funnel-3 neck at initialization) still pushes the right way but with a
        gradient scaled by ``c / |log A|`` instead of one that overflows float32 in the backward
        pass. It only changes samples accepted with probability below e^-c; None disables it.
    drop_log_accept_below
        Samples with log A below minus this (and non-finite ones) are left
        out of the step's objective: their intermediate values are extreme enough (``|x'|`` ~ 1e15
        in the funnel neck) that the backward pass can produce inf * 0 = NaN, which the batched
        matmuls would spread to every weight gradient. They count as rejected.
    beta_init, beta_lr
        Starting beta and the log-space adaptation rate (0.3: with 0.05, beta
        lags far behind on runs of a few thousand steps and acceptance overshoots the target;
        ICG-50 min ESS/MH went from 0.37 to 0.85 in the same 2000 steps).
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    min_lr: float = 1e-5
    target_accept: float = 0.9
    objective: str = "entropy"
    beta_init: float = 0.01
    beta_lr: float = 0.3
    clip_norm: float = 10.0
    adam_betas: tuple = (0.9, 0.999)
    sample_source: str = "auto"
    buffer_size: Optional[int] = None
    buffer_init_steps: int = 500
    stop_gradient: bool = False
    log_accept_floor: Optional[float] = 100.0
    drop_log_accept_below: Optional[float] = 1e6
    dtype: str = "float32"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.sample_source not in ("auto", "exact", "bootstrap"):
            raise ValueError(f"sample_source must be 'auto', 'exact' or 'bootstrap', got {self.sample_source!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {self.target_accept!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if self.buffer_size is not None and self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size}): "
                             "each step draws a minibatch of batch_size chains from the buffer")
        if not self.beta_init > 0:
            raise ValueError("beta_init must be positive")
        self.adam_betas = tuple(self.adam_betas)


@dataclass
class TrainResult:
    """The trained model, its per-step history and timings; `kernel(target)` makes it a sampler."""

    model: ProposalModel
    config: SamplerTrainConfig
    history: Dict[str, List[float]]
    train_time: float
    sample_source: str
    skipped_steps: int = 0
    target_name: str = ""
    extra: Dict[str, object] = field(default_factory=dict)

    def kernel(self, target: Target, seed=None) -> LearnedSampler:
        return LearnedSampler(target, self.model, seed=seed)

    @property
    def final(self) -> Dict[str, float]:
        """Means over the last 10% of steps of acceptance, beta and proposal entropy."""
        n = max(1, len(self.history["accept"]) // 10)
        return {k: float(sum(v[-n:]) / n) for k, v in self.history.items() if k in ("accept", "beta", "entropy",
                                                                                     "loss", "esjd")}

    def save(self, path: Union[str, Path], **meta) -> None:
        save_proposal(path, self.model, target=self.target_name, train_config=dataclasses.asdict(self.config),
                      history=self.history, train_time=self.train_time, skipped_steps=self.skipped_steps,
                      sample_source=self.sample_source, **meta)


def clip_gradients(params, max_norm: float) -> float:
    """Scale the gradients to L2 norm at most `max_norm` (appendix C.2: 10); return the norm before clipping.

    Unlike `torch.nn.utils.clip_grad_norm_` it first divides by the largest |g|, so gradients
    above ~1e19 (a funnel-neck proposal with log A ~ -1e17 at initialization) do not overflow
    the float32 sum of squares; clipping depends only on the direction, so the result is the
    same. Returns inf (and leaves the gradients alone) when a gradient is not finite.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    peak = torch.stack([g.abs().max() for g in grads]).max()
    if not torch.isfinite(peak):
        return float("inf")
    if peak == 0:
        return 0.0
    norm = float(peak.double() * torch.sqrt(sum(((g / peak).double() ** 2).sum() for g in grads)))
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads:
            g.mul_(scale)
    return norm


def _has_exact_sampler(target: Target) -> bool:
    try:
        target.sample(1, torch.Generator().manual_seed(0))
        return True
    except NotImplementedError:
        return False


def warm_buffer(target: Target, init: torch.Tensor, steps: int, seed: int = 0,
                keep_last: int = 0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Move `init` toward the typical set with `steps` MALA steps whose step size adapts to acceptance 0.6.

    Returns the final positions and, with `keep_last` > 0, the positions of the last `keep_last`
    steps stacked as `[keep_last * chains, *event]` (what `fit_preconditioner` is fitted to).
    """
    kept = []
    state = None
    if steps > 0:
        kernel = StepSizeAdaptation(MALAKernel(target, 0.01, seed=seed), target_accept=0.6, per_chain=True)
        state = kernel.init(init)
        kernel.start_warmup(steps)
        for i in range(steps):
            state, _ = kernel.step(state)
            if i >= steps - keep_last:
                kept.append(state.position)
    position = init if state is None else state.position
    return position, (torch.cat(kept) if kept else None)


def default_init(target: Target, num: int, generator: torch.Generator, dtype) -> torch.Tensor:
    """Stan's default: uniform on [-2, 2] in every coordinate."""
    shape = (num,) + tuple(target.event_shape)
    return (4.0 * torch.rand(shape, generator=generator, dtype=torch.float64) - 2.0).to(dtype)


@dataclass
class _Terms:
    per_x: torch.Tensor      # the per-sample objective (differentiable), 0 where not finite
    finite: torch.Tensor
    log_a: torch.Tensor      # min(0, log A), detached
    log_det: torch.Tensor    # detached
    x_new: torch.Tensor      # detached
    jump: torch.Tensor       # |x' - x|^2, detached


def _floored(log_a: torch.Tensor, floor: Optional[float]) -> torch.Tensor:
    """log_a above -floor, -floor (1 + log(-log_a / floor)) below (continuous, slope 1 at the joint)."""
    if not floor:
        return log_a
    tail = -floor * (1.0 + torch.log(torch.clamp(-log_a / floor, min=1.0)))
    return torch.where(log_a < -floor, tail, log_a)


def _objective_terms(model, x, u_x, g_x, z0, fns, objective: str, beta: float,
                     floor: Optional[float] = None, drop_below: Optional[float] = None) -> _Terms:
    """Per x: min(0, log A) + beta log|det| (eqs. 4.4-4.5), or A |x' - x|^2 for the L2 objective."""
    r = propose_move(model, x, g_x, z0, model.eps, fns)
    log_ratio = u_x - r.energy_new + r.log_correction
    finite = torch.isfinite(log_ratio) & torch.isfinite(r.move.log_det) & torch.isfinite(r.move.x_new).all(1)
    if drop_below:
        finite &= log_ratio > -drop_below
    log_a = torch.clamp(log_ratio, max=0.0)
    jump = (r.move.x_new - x).pow(2).sum(1)
    if objective == "entropy":
        per_x = _floored(log_a, floor) + beta * r.move.log_det
    else:
        per_x = torch.exp(log_a) * jump
    per_x = torch.where(finite, per_x, torch.zeros_like(per_x))
    return _Terms(per_x, finite, log_a.detach(), r.move.log_det.detach(), r.move.x_new.detach(), jump.detach())


def objective_terms(model, x, u_x, g_x, z0, fns, objective: str, beta: float, floor: Optional[float] = None,
                    drop_below: Optional[float] = None) -> Tuple[_Terms, Optional[_Terms]]:
    """`_objective_terms` on every row, and again on the finite rows alone when some, not all, are non-finite
    (else None): a non-finite or extreme sample (a NaN proposal at an extreme funnel point, say) can turn every
    weight gradient into NaN through the batched matmuls' backward (0 * inf), and rows do not interact forward."""
    terms = _objective_terms(model, x, u_x, g_x, z0, fns, objective, beta, floor, drop_below)
    dropped = int((~terms.finite).sum())
    if not 0 < dropped < x.shape[0]:
        return terms, None
    keep = terms.finite.nonzero().flatten()
    return terms, _objective_terms(model, x[keep], u_x[keep], None if g_x is None else g_x[keep], z0[keep], fns,
                                   objective, beta, floor, drop_below)


def train_sampler(target: Target, model: Optional[ProposalModel] = None, config: Optional[SamplerTrainConfig] = None,
                  model_config: Optional[LearnedProposalConfig] = None, seed: int = 0, progress: bool = True,
                  init: Optional[torch.Tensor] = None,
                  callback: Optional[Callable[[int, Dict[str, float], ProposalModel], None]] = None) -> TrainResult:
    """Train a proposal model on `target` (eqs. 4.4-4.5) and return it with its history.

    Parameters
    ----------
    target
        The target to train on.
    model
        A `ProposalModel` to train (e.g. `AdaptiveMALAProposal` for the linear
        baseline); by default a `LearnedProposal` built from `model_config`.
    config
        A `SamplerTrainConfig` (defaults: ICG-like settings, see `presets.preset`).
    seed
        Seeds the model's initial weights, the masks' draw is in `model_config.mask_seed`.
    progress
        A tqdm bar with acceptance, beta and proposal entropy (shown on terminals).
    init
        Starting positions of the bootstrap buffer (default: uniform on [-2, 2]).
    callback
        Called as `callback(step, record, model)` after every step.
    """
    cfg = config or SamplerTrainConfig()
    dtype = getattr(torch, cfg.dtype)
    if model is None:
        mc = model_config or LearnedProposalConfig(target.dim, tuple(target.event_shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LearnedProposal(mc)
    if model.dim != target.dim:
        raise ValueError(f"model dimension {model.dim} does not match the target's {target.dim}")
    model.to(dtype).train().requires_grad_(True)
    gen = torch.Generator().manual_seed(seed + 1)
    fns = TargetFunctions(target, differentiable=True, stop_gradient=cfg.stop_gradient)
    plain = TargetFunctions(target, differentiable=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.adam_betas)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.min_lr)

    source = cfg.sample_source
    if source == "auto":
        source = "exact" if _has_exact_sampler(target) else "bootstrap"
    t_start = time.perf_counter()
    buffer = None
    fit = model.needs_preconditioner
    if source == "bootstrap":
        n = cfg.buffer_size or cfg.batch_size
        if init is not None and init.shape[0] != n:
            raise ValueError(f"init has {init.shape[0]} rows; the bootstrap buffer holds buffer_size = {n} chains")
        start = init if init is not None else default_init(target, n, gen, dtype)
        keep = cfg.buffer_init_steps // 2 if fit else 0
        buffer, warm = warm_buffer(target, start.to(dtype), cfg.buffer_init_steps, seed, keep_last=keep)
        buffer = buffer.reshape(n, -1)
        if fit:
            if warm is None:
                raise ValueError("fitting the preconditioner to the bootstrap buffer needs buffer_init_steps >= 2 "
                                 "(e.g. 500), or call model.fit_preconditioner(samples) before training")
            model.fit_preconditioner(warm)
    elif fit:
        model.fit_preconditioner(target.sample(max(4096, 20 * target.dim), gen, dtype=torch.float64))

    d = target.dim
    h0 = base_entropy(d)
    log_beta = math.log(cfg.beta_init)
    hist: Dict[str, List[float]] = {k: [] for k in ("accept", "beta", "entropy", "loss", "esjd", "grad_norm",
                                                    "lr", "dropped", "time")}
    skipped = 0
    bar = None
    steps = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(steps, desc=f"train {target.name}", disable=None, dynamic_ncols=True)
        steps = bar
    for step in steps:
        rows = None  # the buffer's chains in this step's minibatch (None: all of them)
        if source == "exact":
            x = target.sample(cfg.batch_size, gen, dtype=dtype).reshape(cfg.batch_size, -1)
        elif buffer.shape[0] == cfg.batch_size:
            x = buffer
        else:
            rows = torch.randperm(buffer.shape[0], generator=gen)[:cfg.batch_size]
            x = buffer[rows]
        with torch.no_grad():
            if model.needs_grad_at_x:
                u_x, g_x = plain.energy_and_grad(x)
            else:
                u_x, g_x = plain.energy(x), None
        z0 = torch.randn(x.shape, generator=gen, dtype=dtype)
        beta = math.exp(log_beta)
        limits = (cfg.log_accept_floor, cfg.drop_log_accept_below)
        t_, t_sub = objective_terms(model, x, u_x, g_x, z0, fns, cfg.objective, beta, *limits)
        dropped = int((~t_.finite).sum())
        if t_sub is not None:
            objective = t_sub.per_x[t_sub.finite].sum() / max(int(t_sub.finite.sum()), 1)
            usable = bool(t_sub.finite.all())
        else:
            objective = t_.per_x.sum() / x.shape[0]
            usable = dropped == 0
        opt.zero_grad(set_to_none=True)
        grad_norm = float("inf")
        if usable:
            (-objective).backward()
            grad_norm = clip_gradients(params, cfg.clip_norm)
        if usable and math.isfinite(grad_norm):
            opt.step()
        else:
            skipped += 1
        sched.step()

        with torch.no_grad():
            # the buffer's chains take the MH step of the proposal just scored, with its log A
            u = (torch.rand(t_.log_a.shape, generator=gen, dtype=dtype) if buffer is not None
                 else torch.ones_like(t_.log_a))
            acc, take = metropolis_accept(t_.log_a, u, t_.finite)
            acc_mean = float(acc.mean())
            if cfg.objective == "entropy":
                log_beta += cfg.beta_lr * (acc_mean - cfg.target_accept)
            if buffer is not None:
                moved = torch.where(take[:, None], t_.x_new, x)
                buffer = moved if rows is None else buffer.index_copy(0, rows, moved)
            ld = t_.log_det[t_.finite]
            entropy = h0 + float(ld.mean()) if ld.numel() else float("nan")
            rec = {"accept": acc_mean, "beta": math.exp(log_beta), "entropy": entropy, "loss": -float(objective),
                   "esjd": float((acc * t_.jump.nan_to_num(0.0, 0.0, 0.0)).mean()),
                   "grad_norm": grad_norm, "lr": sched.get_last_lr()[0], "dropped": dropped,
                   "time": time.perf_counter() - t_start}
        for k, v in rec.items():
            hist[k].append(v)
        if callback is not None:
            callback(step, rec, model)
        if bar is not None and step % 10 == 0:
            bar.set_postfix(acc=f"{acc_mean:.3f}", beta=f"{rec['beta']:.3g}", H=f"{entropy:.2f}", refresh=False)
    if bar is not None:
        bar.close()
    model.eval().requires_grad_(False)
    return TrainResult(model, cfg, hist, time.perf_counter() - t_start, source, skipped, target.name,
                       {"buffer": buffer})


__all__ = ["SamplerTrainConfig", "TrainResult", "train_sampler", "warm_buffer", "OBJECTIVES"]

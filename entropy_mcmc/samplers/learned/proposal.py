"""Proposal models with a tractable density both ways: the learned sampler of thesis section 4.3 and its ablations.

A `ProposalModel` maps a base draw z0 ~ N(0, I) at x to a move x' and returns
log q(x'|x); it evaluates log q(x|x') for the reverse move; and it reports
log|dx'/dz0|, whose expectation plus the base entropy d/2 log(2 pi e) is the proposal
entropy H(X'|X = x) (eq. 4.4). The same code serves sampling (detached target
gradients, no autograd) and training (differentiable target gradients), so the
density the sampler accepts with is the density the trainer optimizes.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .flow import CouplingFlow, GradFn, checkerboard_masks, random_masks
from .networks import StepIndexedMLP, squash

VARIANTS = ("full", "no_grad", "langevin")
PRECONDITIONERS = ("none", "diag", "dense")


@dataclass
class Move:
    """A proposed move from x (all tensors have the batch as leading dim, positions flattened to `[B, d]`)."""

    x_new: torch.Tensor
    log_q: torch.Tensor          # log q(x_new | x), with all constants
    log_det: torch.Tensor        # log |dx_new / dz0|: H(q(.|x)) = d/2 log(2 pi e) + E[log_det]
    z0: torch.Tensor
    num_grad_evals: int
    aux: Dict[str, torch.Tensor] = field(default_factory=dict)


def log_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row, with the 2 pi constant."""
    return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def base_entropy(dim: int) -> float:
    """Entropy of N(0, I_d) in nats."""
    return 0.5 * dim * (1.0 + math.log(2 * math.pi))


def _eps(eps, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """eps as a `[B, 1]`-broadcastable tensor and d log eps per chain `[B]`."""
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.dim() == 1:
        if e.shape[0] != x.shape[0]:
            raise ValueError(f"per-chain eps must have shape [{x.shape[0]}], got {list(e.shape)}")
        e = e[:, None]
    elif e.dim() > 1:
        raise ValueError("eps must be a scalar or a [chains] tensor")
    log_scale = (x.shape[1] * torch.log(e)).reshape(-1).expand(x.shape[0])
    return e, log_scale


class ProposalModel(nn.Module):
    """Interface shared by `LearnedProposal` and `AdaptiveMALAProposal`.

    `needs_grad_at_x`: whether the move uses dU(x) (and the reverse dU(x')); the kernel
    then caches the gradient in its state, so it costs one evaluation per step.
    `grad_evals(forward)`: target-gradient evaluations of one forward move (or one reverse density).
    """

    kind: str = "base"
    needs_grad_at_x: bool = False
    needs_preconditioner: bool = False  # `train_sampler` fits one first where True

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def eps(self) -> float:
        return self.config.eps

    @property
    def dim(self) -> int:
        return self.config.dim

    def grad_evals(self) -> int:
        raise NotImplementedError

    def forward_move(self, x: torch.Tensor, grad_x: Optional[torch.Tensor], z0: torch.Tensor, eps,
                     grad_fn: Optional[GradFn]) -> Move:
        raise NotImplementedError

    def log_density(self, x: torch.Tensor, grad_x: Optional[torch.Tensor], x_new: torch.Tensor, eps,
                    grad_fn: Optional[GradFn]) -> torch.Tensor:
        """log q(x_new | x)."""
        raise NotImplementedError

    def reverse_log_density(self, move: Move, x: torch.Tensor, grad_x_new: Optional[torch.Tensor], eps,
                            grad_fn: Optional[GradFn]) -> torch.Tensor:
        """log q(x | x_new) for a move made by `forward_move` from x."""
        return self.log_density(move.x_new, grad_x_new, x, eps, grad_fn)

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self.config)}


@dataclass
class LearnedProposalConfig:
    """Architecture of the learned sampler (Table C.1 gives width and steps per target).

    variant: "full" (eqs. 4.1-4.3), "no_grad" (appendix C.1 variant 1: target gradient off,
        a RealNVP conditioned on x) or "langevin" (variant 2: Langevin with learned noise).
    mask: "random" (one random half-mask per z-update step, drawn with `mask_seed`) or
        "checkerboard" (fixed, for image-shaped event shapes).
    precondition: "none" (the thesis model), "diag" or "dense": the flow works on
        y = L^{-1}(x - loc), with loc and L (a scale vector or a lower-triangular matrix) fitted
        to samples by `LearnedProposal.fit_preconditioner` (`train_sampler` does it before training).
        Not in the thesis: a fixed affine change of variables, like HMC's mass matrix, that leaves
        the flow a near-isotropic target to learn on roughly Gaussian posteriors.
    """

    dim: int
    event_shape: Sequence[int] = ()
    width: int = 128
    num_steps: int = 1
    depth: int = 5
    eps: float = 0.1
    variant: str = "full"
    mask: str = "random"
    mask_seed: int = 0
    squash_inputs: bool = True
    precondition: str = "none"

    def __post_init__(self):
        self.event_shape = tuple(int(s) for s in self.event_shape) or (int(self.dim),)
        if math.prod(self.event_shape) != self.dim:
            raise ValueError(f"event_shape {self.event_shape} does not have {self.dim} elements")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.mask not in ("random", "checkerboard"):
            raise ValueError(f"mask must be 'random' or 'checkerboard', got {self.mask!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")
        if self.precondition not in PRECONDITIONERS:
            raise ValueError(f"precondition must be one of {PRECONDITIONERS}, got {self.precondition!r}")


class LearnedProposal(ProposalModel):
    """The proposal x' = x + eps z, z = f(z0; x, U) of thesis section 4.3, or one of its C.1 ablations.

    ``log q(x'|x) = log N(z0) - log|dz^N/dz^0| - d log eps`` (change of variables, eqs. 4.3-4.4);
    the reverse density inverts the coupling stack at x' on z_rev = -z. With every network
    output at zero, "full" and "langevin" are exactly MALA with step eps, and "no_grad"
    is a random walk with step eps.

    Variant "langevin" (appendix C.1): x' = x + eps z - eps^2/2 dU(x) exp(S(x)) + T(x) with
    z = f(z0; x) from the gradient-free flow and S, T an MLP of x.
    """

    kind = "learned"

    def __init__(self, config: LearnedProposalConfig):
        super().__init__(config)
        c = config
        if c.mask == "checkerboard":
            masks = checkerboard_masks(c.event_shape, c.num_steps)
        else:
            masks = random_masks(c.dim, c.num_steps, torch.Generator().manual_seed(c.mask_seed))
        self.flow = CouplingFlow(c.dim, c.num_steps, c.width, masks, c.depth, use_grad=c.variant == "full",
                                 squash_inputs=c.squash_inputs)
        self.drift = StepIndexedMLP(c.dim, 2 * c.dim, c.width, 1, c.depth) if c.variant == "langevin" else None
        self.needs_grad_at_x = c.variant == "langevin"
        if c.precondition != "none":
            self.register_buffer("loc", torch.zeros(c.dim))
            self.register_buffer("scale", torch.ones(c.dim) if c.precondition == "diag" else torch.eye(c.dim))
            self.register_buffer("preconditioner_fitted", torch.zeros((), dtype=torch.bool))

    # --- the affine preconditioner x = loc + L y ------------------------------------------------
    @property
    def preconditioned(self) -> bool:
        return self.config.precondition != "none"

    @property
    def needs_preconditioner(self) -> bool:
        """True while a preconditioned model still has its identity initialization."""
        return self.preconditioned and not bool(self.preconditioner_fitted)

    @torch.no_grad()
    def fit_preconditioner(self, samples: torch.Tensor, jitter: float = 1e-6) -> None:
        """Set loc to the sample mean and L to the sample scale (sd per coordinate, or the Cholesky
        factor of the covariance with `jitter` times its mean variance on the diagonal) of `samples` `[n, d]`."""
        if not self.preconditioned:
            raise ValueError("this model has precondition='none'")
        x = samples.reshape(samples.shape[0], -1).double()
        if x.shape[1] != self.dim or x.shape[0] < 2:
            raise ValueError(f"fit_preconditioner needs [n >= 2, {self.dim}] samples, got {list(samples.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("fit_preconditioner: the samples contain NaN or inf")
        cov = torch.atleast_2d(torch.cov(x.T))
        var = cov.diagonal()
        if not (var > 0).all():
            raise ValueError("fit_preconditioner: a coordinate has zero variance in the samples")
        if self.config.precondition == "diag":
            scale = var.sqrt()
        else:
            scale = torch.linalg.cholesky(cov + jitter * var.mean() * torch.eye(self.dim, dtype=cov.dtype))
        self.loc.copy_(x.mean(0))
        self.scale.copy_(scale)
        self.preconditioner_fitted.fill_(True)

    def _log_abs_det_scale(self) -> torch.Tensor:
        s = self.scale if self.config.precondition == "diag" else self.scale.diagonal()
        return torch.log(s).sum()

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """y = L^{-1}(x - loc) for rows x `[B, d]` (a preconditioned model only)."""
        if self.config.precondition == "diag":
            return (x - self.loc) / self.scale
        return torch.linalg.solve_triangular(self.scale, (x - self.loc).T, upper=False).T

    def unwhiten(self, y: torch.Tensor) -> torch.Tensor:
        """x = loc + L y."""
        return self.loc + (y * self.scale if self.config.precondition == "diag" else y @ self.scale.T)

    def whiten_grad(self, g: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """dU/dy = L^T dU/dx for row vectors."""
        if g is None:
            return None
        return g * self.scale if self.config.precondition == "diag" else g @ self.scale

    def _grad_fn_y(self, grad_fn: Optional[GradFn]) -> Optional[GradFn]:
        return None if grad_fn is None else (lambda y: self.whiten_grad(grad_fn(self.unwhiten(y))))

    def grad_evals(self) -> int:
        # full: 2N per pass; langevin: dU(x) and dU(x') come from the kernel's cached states
        return self.flow.grad_evals_per_pass

    def _drift(self, x: torch.Tensor, grad_x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """-eps^2/2 dU(x) exp(S(x)) + T(x) (variant 2)."""
        s, t = self.drift(squash(x) if self.config.squash_inputs else x).chunk(2, 1)
        return -0.5 * eps * eps * grad_x * torch.exp(s) + t

    def forward_move(self, x, grad_x, z0, eps, grad_fn) -> Move:
        if not self.preconditioned:
            return self._forward_move(x, grad_x, z0, eps, grad_fn)
        # in y = L^{-1}(x - loc): x' = loc + L y', so log|dx'/dz0| gains log|det L| and log q loses it
        move = self._forward_move(self.whiten(x), self.whiten_grad(grad_x), z0, eps, self._grad_fn_y(grad_fn))
        log_det_l = self._log_abs_det_scale()
        return dataclasses.replace(move, x_new=self.unwhiten(move.x_new), log_q=move.log_q - log_det_l,
                                   log_det=move.log_det + log_det_l, aux={**move.aux, "y_new": move.x_new})

    def log_density(self, x, grad_x, x_new, eps, grad_fn) -> torch.Tensor:
        if not self.preconditioned:
            return self._log_density(x, grad_x, x_new, eps, grad_fn)
        log_q = self._log_density(self.whiten(x), self.whiten_grad(grad_x), self.whiten(x_new), eps,
                                  self._grad_fn_y(grad_fn))
        return log_q - self._log_abs_det_scale()

    def _forward_move(self, x, grad_x, z0, eps, grad_fn) -> Move:
        e, d_log_eps = _eps(eps, x)
        eps_half = e / (2 * self.config.num_steps)
        z, logdet = self.flow(z0, x, eps_half, grad_fn)
        x_new = x + e * z
        if self.drift is not None:
            x_new = x_new + self._drift(x, grad_x, e)
        log_det = logdet + d_log_eps
        return Move(x_new, log_normal(z0) - log_det, log_det, z0, self.grad_evals(), {"z": z})

    def _log_density(self, x, grad_x, x_new, eps, grad_fn, z=None) -> torch.Tensor:
        """log q(x_new | x) in the flow's own coordinates; `z`, when given, is the move's displacement variable."""
        e, d_log_eps = _eps(eps, x)
        if z is None:
            delta = x_new - x
            if self.drift is not None:
                delta = delta - self._drift(x, grad_x, e)
            z = delta / e
        z0, logdet = self.flow.inverse(z, x, e / (2 * self.config.num_steps), grad_fn)
        return log_normal(z0) - logdet - d_log_eps

    def reverse_log_density(self, move, x, grad_x_new, eps, grad_fn) -> torch.Tensor:
        if self.drift is not None:
            return self.log_density(move.x_new, grad_x_new, x, eps, grad_fn)
        # x = x' + eps * (-z) exactly in the full and no-gradient variants (thesis: f^{-1}(-z; x + z)),
        # so only x' (or y' = L^{-1}(x' - loc), kept by the forward move) enters the inverse
        if not self.preconditioned:
            return self._log_density(move.x_new, None, None, eps, grad_fn, z=-move.aux["z"])
        return (self._log_density(move.aux["y_new"], None, None, eps, self._grad_fn_y(grad_fn), z=-move.aux["z"])
                - self._log_abs_det_scale())


__all__ = ["ProposalModel", "LearnedProposal", "LearnedProposalConfig", "Move", "log_normal", "base_entropy",
           "VARIANTS", "PRECONDITIONERS"]

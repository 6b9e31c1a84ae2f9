"""`LearnedSampler`: a trained (or untrained) proposal model plus the library's single Metropolis-Hastings path.

The move, its forward density and the reverse density come from one function,
`propose_move`, used both by the kernel (detached target gradients, no autograd) and
by the trainer (differentiable target gradients), so what is trained is what is sampled.
The kernel is exact whatever the network weights are (thesis section 4.3): the MH
ratio uses log q(x|x') - log q(x'|x) from the flow's change of variables.
"""
from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from ...targets.base import Target
from ..base import ChainState, Seed
from ..metropolis import MetropolisHastingsKernel, Proposal
from .adaptive_mala import AdaptiveMALAConfig, AdaptiveMALAProposal
from .proposal import Move, ProposalModel, base_entropy


class TargetFunctions:
    """U and dU on flattened positions `[B, d]`, either detached (sampling) or differentiable (training).

    Differentiable mode backpropagates through the target gradient (thesis section 4.3: "full
    back-propagation", no stop-gradient). It uses the target's own `energy_and_grad` when that
    returns a gradient carrying an autograd graph (the analytic gradients of the Gaussian, funnel
    and logistic regression targets do when the input requires grad), otherwise autograd on
    `target.energy` with `create_graph=True`. `stop_gradient=True` detaches the gradient instead
    (the cheaper scheme of Titsias & Dellaportas that the thesis found worse), kept for ablations;
    the energy U stays differentiable, so the acceptance term still trains the proposal.
    """

    def __init__(self, target: Target, differentiable: bool = False, stop_gradient: bool = False):
        self.target = target
        self.differentiable = differentiable
        self.stop_gradient = stop_gradient
        self._analytic_ok: Optional[bool] = None
        self._grad_only = getattr(target, "grad", None)

    def _view(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape((y.shape[0],) + tuple(self.target.event_shape))

    def energy(self, y: torch.Tensor) -> torch.Tensor:
        return self.target.energy(self._view(y))

    def energy_and_grad(self, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.differentiable:
            u, g = self.target.energy_and_grad(self._view(y))
            return u, g.reshape(y.shape)
        return self._differentiable_energy_and_grad(y)

    def grad(self, y: torch.Tensor) -> torch.Tensor:
        if self.differentiable and not self.stop_gradient:
            return self._differentiable_energy_and_grad(y)[1]
        if self.stop_gradient:
            y = y.detach()
        if callable(self._grad_only):
            return self._grad_only(self._view(y)).reshape(y.shape).detach()
        return self.target.energy_and_grad(self._view(y))[1].reshape(y.shape).detach()

    def _differentiable_energy_and_grad(self, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.stop_gradient:  # dU(x') is a constant; U(x') in the acceptance ratio stays differentiable
            g = self.target.energy_and_grad(self._view(y.detach()))[1].detach()
            with torch.enable_grad():
                return self.energy(y), g.reshape(y.shape)
        with torch.enable_grad():
            if not y.requires_grad:
                y = y.detach().requires_grad_(True)
            if self._analytic_ok is not False:
                u, g = self.target.energy_and_grad(self._view(y))
                self._analytic_ok = bool(g.requires_grad and u.requires_grad)
                if self._analytic_ok:
                    return u, g.reshape(y.shape)
            u = self.energy(y)
            (g,) = torch.autograd.grad(u.sum(), y, create_graph=True)
            return u, g


@dataclass
class MoveResult:
    move: Move
    energy_new: torch.Tensor
    grad_new: Optional[torch.Tensor]
    log_correction: torch.Tensor   # log q(x|x') - log q(x'|x)
    num_grad_evals: int


def propose_move(model: ProposalModel, x: torch.Tensor, grad_x: Optional[torch.Tensor], z0: torch.Tensor, eps,
                 fns: TargetFunctions) -> MoveResult:
    """One proposal from flattened positions `x` `[B, d]`: the move, U(x'), and the MH log correction.

    Gradient evaluations: the forward and the reverse pass each evaluate dU once per half-step
    (2N each, 4N in all, as in appendix C.1); a model that uses dU(x) and dU(x') (variant 2,
    adaptive MALA) reads dU(x) from the cached state and costs one evaluation, at x'.
    """
    move = model.forward_move(x, grad_x, z0, eps, fns.grad)
    if model.needs_grad_at_x:
        u_new, g_new = fns.energy_and_grad(move.x_new)
    else:
        u_new, g_new = fns.energy(move.x_new), None
    log_q_rev = model.reverse_log_density(move, x, g_new, eps, fns.grad)
    n = 2 * model.grad_evals() + (1 if model.needs_grad_at_x else 0)
    return MoveResult(move, u_new, g_new, log_q_rev - move.log_q, n)


class LearnedSampler(MetropolisHastingsKernel):
    """MH kernel whose proposal is a `ProposalModel` (thesis section 4.3), exact for any weights.

    Parameters
    ----------
    target
        The `Target` to sample; its flattened dimension must equal the model's.
    model
        A `LearnedProposal` (or `AdaptiveMALAProposal`), trained or not.
    step_size
        Eps of x' = x + eps z; defaults to the model's own eps (0.1 in the thesis).
        A scalar or a `[chains]` tensor, so `StepSizeAdaptation` can wrap the kernel.
    seed
        Int or `torch.Generator`.

    Notes
    -----
    `init` moves the model to the dtype and device of the initial positions.
    """

    def __init__(self, target: Target, model: ProposalModel, step_size=None, seed: Seed = None,
                 divergence_threshold: float = 1000.0):
        if model.dim != target.dim:
            raise ValueError(f"model dimension {model.dim} does not match the target's {target.dim} "
                             f"({target.name}, event shape {tuple(target.event_shape)})")
        super().__init__(target, model.eps if step_size is None else step_size, seed, divergence_threshold)
        self.model = model
        self.needs_grad = model.needs_grad_at_x
        self._fns = TargetFunctions(target, differentiable=False)

    def init(self, position: torch.Tensor) -> ChainState:
        self.model.to(dtype=position.dtype, device=position.device)
        return super().init(position)

    def _flat(self, t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if t is None else t.reshape(t.shape[0], -1)

    def propose(self, state: ChainState) -> Proposal:
        x = state.position
        xf = self._flat(x)
        with torch.no_grad():
            z0 = self.randn_like(xf)
            r = propose_move(self.model, xf, self._flat(state.grad), z0, self.step_size, self._fns)
        g_new = None if r.grad_new is None else r.grad_new.reshape(x.shape)
        cand = ChainState(r.move.x_new.reshape(x.shape), r.energy_new, g_new)
        return Proposal(cand, r.log_correction, r.num_grad_evals, {"log_det": r.move.log_det})

    def proposal_log_density(self, x: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
        """log q(x_new | x) for positions `[chains, *event]`, with all constants."""
        xf, yf = self._flat(x), self._flat(x_new)
        with torch.no_grad():
            g = self._fns.grad(xf) if self.model.needs_grad_at_x else None
            return self.model.log_density(xf, g, yf, self.step_size, self._fns.grad)

    def proposal_entropy(self, state: ChainState, num_samples: int = 16, seed: int = 0) -> torch.Tensor:
        """Monte Carlo estimate of ``H(X'|X = x) = d/2 log(2 pi e) + E log|dx'/dz0|`` (eq. 4.4), per chain.

        Uses its own generator (`seed`), so it never advances the chain's random stream.
        """
        x = self._flat(getattr(state, "position", state))
        gen = torch.Generator(device=x.device).manual_seed(seed)
        g = self._flat(getattr(state, "grad", None))
        if self.model.needs_grad_at_x and g is None:
            g = self._fns.grad(x)
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for _ in range(num_samples):
                z0 = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
                total += self.model.forward_move(x, g, z0, self.step_size, self._fns.grad).log_det
        return base_entropy(x.shape[1]) + total / num_samples

    # --- saving and loading -------------------------------------------------------------------
    def save(self, path: Union[str, Path], **meta) -> None:
        """Write the model's config and weights (and `meta`, e.g. the training history) to `path`."""
        save_proposal(path, self.model, target=self.target.name, **meta)

    @classmethod
    def load(cls, path: Union[str, Path], target: Target, seed: Seed = None, step_size=None,
             map_location="cpu") -> "LearnedSampler":
        """A kernel for `target` from a file written by `save` or `train_sampler`."""
        model, meta = load_proposal(path, map_location)
        saved = meta.get("target")
        if saved and saved != target.name and model.dim != target.dim:
            raise ValueError(f"{path} holds a sampler trained on {saved!r} (d={model.dim}), "
                             f"not usable for {target.name!r} (d={target.dim})")
        kernel = cls(target, model, step_size=step_size, seed=seed)
        kernel.meta = meta
        return kernel


class AdaptiveMALA(LearnedSampler):
    """MH kernel with the adaptive-MALA proposal: one gradient evaluation per step (dU(x') only)."""

    def __init__(self, target: Target, model: AdaptiveMALAProposal = None, step_size=None, seed: Seed = None,
                 divergence_threshold: float = 1000.0):
        if model is None:
            model = AdaptiveMALAProposal(AdaptiveMALAConfig(target.dim, tuple(target.event_shape)))
        super().__init__(target, model, step_size, seed, divergence_threshold)


FORMAT_VERSION = 1


def _plain(value: Any, where: str) -> Any:
    """`value` as plain containers of tensors and primitives, all that `torch.load(weights_only=True)` reads:
    numpy arrays become tensors, numpy scalars numbers, dataclasses dicts, paths strings; anything else is a
    TypeError naming `where`."""
    import numpy as np

    if value is None or type(value) in (bool, int, float, str):  # exact types: np.float64 is a float subclass
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value), where)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"cannot save {where}: key {k!r} is a {type(k).__name__}, not a str or int")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"cannot save {where}: a {type(value).__name__} is not a tensor, number, string or container "
                    "of those (a sampler file holds plain data only, so loading it runs no code)")


def save_proposal(path: Union[str, Path], model: ProposalModel, **meta) -> None:
    """torch.save of {format, model: {kind, config}, state_dict, meta}, plain data only; reload with
    `load_proposal`. `meta` may hold numpy arrays and dataclasses (converted); other objects are a TypeError."""
    payload = {"format": "entropy_mcmc.learned_sampler", "version": FORMAT_VERSION,
               "model": _plain(model.describe(), "the model description"),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "meta": _plain(meta, "meta")}
    torch.save(payload, str(path))


def load_proposal(path: Union[str, Path], map_location="cpu") -> Tuple[ProposalModel, Dict[str, Any]]:
    """Rebuild a proposal model from its saved config and load its weights (masks included).

    The file is read with `torch.load(weights_only=True)`: a file holding anything but tensors and plain
    containers (a pickle that would run code when loaded) is a ValueError, and nothing in it is executed.
    """
    from .model_kinds import build_model

    try:  # weights_only: tensors and plain containers; a pickle that would import or call anything is refused
        payload = torch.load(str(path), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        detail = next((line for line in str(err).splitlines() if "GLOBAL" in line), "").strip()
        if detail:  # the restricted unpickler met an import or a call
            raise ValueError(f"{path} was refused: it holds objects whose unpickling would run code ({detail}); "
                             "a learned sampler file holds only tensors and plain data") from None
        raise ValueError(f"{path} is not a learned sampler file written by entropy_mcmc (unreadable: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != "entropy_mcmc.learned_sampler":
        raise ValueError(f"{path} is not a learned sampler file written by entropy_mcmc")
    try:
        model = build_model(payload["model"])
        model.to(getattr(torch, payload.get("dtype", "float32")))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, AttributeError, RuntimeError) as err:
        raise ValueError(f"{path} is a damaged learned sampler file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'missing entry'})") from None
    return model, payload.get("meta", {})


__all__ = ["LearnedSampler", "AdaptiveMALA", "TargetFunctions", "propose_move", "MoveResult", "save_proposal",
           "load_proposal"]

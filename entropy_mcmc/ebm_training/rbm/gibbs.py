"""Block Gibbs kernels for the CAP-RBM and the Bernoulli RBM, vectorized over chains.

One transition samples every hidden unit given the visible layer, then every visible unit given
the hidden layer (appendix A.3: "alternating parallel Gibbs sampling"). Each block is drawn exactly
from its conditional, so there is no accept step (`info.acceptance_prob` is 1, `is_calibrated` True).
With `clamp_visible=True` the visible layer stays at its initial value and only the hidden layer is
resampled: draws from p(h | v) to read out hidden representations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

from ...samplers import Capabilities, KernelSpec, register_kernel
from ...samplers.base import Seed, StepInfo, TransitionKernel
from .bernoulli import RBM
from .caprbm import CAPRBM, check_units


@dataclass
class RBMState:
    """Both layers of every chain: `visible` `[chains, visible]` and `hidden` `[chains, hidden]`
    (complex for the CAP-RBM, 0/1 floats for the Bernoulli RBM), and E(v, h) `[chains]` when recorded."""

    visible: torch.Tensor
    hidden: torch.Tensor
    energy: Optional[torch.Tensor] = None


class _BlockGibbs(TransitionKernel):
    is_calibrated = True

    def __init__(self, model, clamp_visible: bool = False, record_energy: bool = True, seed: Seed = None):
        super().__init__(seed)
        self.model = model
        self.clamp_visible = bool(clamp_visible)
        self.record_energy = bool(record_energy)

    def _check_visible(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _energy(self, v, h) -> Optional[torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def init(self, position: torch.Tensor) -> RBMState:
        """Chains starting at visible states `position` `[chains, visible]`, hidden drawn from p(h | v)."""
        v = self._check_visible(position)
        self._ensure_generator(v.real if v.is_complex() else v)
        h = self.model.sample_hidden(v, self.generator)
        return RBMState(v, h, self._energy(v, h))

    @torch.no_grad()
    def step(self, state: RBMState):
        h = self.model.sample_hidden(state.visible, self.generator)
        v = state.visible if self.clamp_visible else self.model.sample_visible(h, self.generator)
        new = RBMState(v, h, self._energy(v, h))
        return new, StepInfo.always_accepted(h)

    def record(self, state: RBMState) -> Dict[str, torch.Tensor]:
        return {"visible": state.visible, "hidden": state.hidden}

    def refresh(self, state: RBMState) -> RBMState:
        """Re-evaluate the cached energy after the model's weights changed."""
        return RBMState(state.visible, state.hidden, self._energy(state.visible, state.hidden))


class CAPRBMGibbs(_BlockGibbs):
    """Block Gibbs for a `CAPRBM`: amplitude ~ Bernoulli(eq. A.3), phase ~ von Mises(eq. A.4), layer by layer.

    Parameters
    ----------
    model
        The CAP-RBM.
    clamp_visible
        Keep the visible layer fixed and resample only the hidden one.
    record_energy
        Keep E(v, h) in the state (one matrix product per step; trainers switch it off).
    seed
        An int, a `torch.Generator`, or None (fresh entropy).
    """

    def __init__(self, model: CAPRBM, clamp_visible: bool = False, record_energy: bool = True, seed: Seed = None):
        if not isinstance(model, CAPRBM):
            raise TypeError(f"CAPRBMGibbs samples a CAPRBM, got {type(model).__name__}")
        super().__init__(model, clamp_visible, record_energy, seed)

    def _check_visible(self, v):
        return check_units(v, self.model.num_visible, "initial visible state", self.model.complex_dtype)

    def _energy(self, v, h):
        return self.model.energy(v, h) if self.record_energy else None


class BernoulliGibbs(_BlockGibbs):
    """Block Gibbs for a binary `RBM`: h ~ Bernoulli(sigmoid(v W + b)), then v ~ Bernoulli(sigmoid(W h + c))."""

    def __init__(self, model: RBM, clamp_visible: bool = False, record_energy: bool = True, seed: Seed = None):
        if not isinstance(model, RBM):
            raise TypeError(f"BernoulliGibbs samples a Bernoulli RBM, got {type(model).__name__}")
        super().__init__(model, clamp_visible, record_energy, seed)

    def _check_visible(self, v):
        return self.model.check_visible(v, "initial visible state")

    def _energy(self, v, h):
        return self.model.energy(v, h) if self.record_energy else None


# registry entries (also declared as `entropy_mcmc.kernels` entry points in setup.cfg):
# build_kernel("caprbm-gibbs", model, num_warmup=0, clamp_visible=False, record_energy=True, seed=None)
CAPRBM_GIBBS = register_kernel("caprbm-gibbs", KernelSpec(
    CAPRBMGibbs, "block Gibbs for a CAP-RBM (thesis ch. 2): hidden then visible layer, amplitude Bernoulli(eq. A.3), "
    "phase von Mises (eq. A.4); target: a CAPRBM", step_size=None, adapts_step_size=False,
    capabilities=Capabilities(state_space="phase", needs_gradient=False, step_size=False)))
BERNOULLI_GIBBS = register_kernel("bernoulli-gibbs", KernelSpec(
    BernoulliGibbs, "block Gibbs for a Bernoulli RBM: hidden then visible layer; target: an RBM", step_size=None,
    adapts_step_size=False, capabilities=Capabilities(state_space="binary", needs_gradient=False, step_size=False)))

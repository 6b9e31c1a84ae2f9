"""The learned sampler trained alongside an energy model (thesis section 4.5, appendix C.2): variant 2 of
appendix C.1 (Langevin with flow noise and an affine-transformed gradient), and its entropy-objective updates on
replay-buffer states, which the sampler's own Metropolis-Hastings step (`samplers.metropolis_accept`) moves."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict

import torch

from ..samplers.learned.kernel import LearnedSampler, TargetFunctions
from ..samplers.learned.proposal import LearnedProposal, LearnedProposalConfig
from ..learning.training import clip_gradients, objective_terms
from ..samplers.metropolis import metropolis_accept
from .energy_target import EnergyTarget
from .negative_phase import ReplayBuffer


def learned_variant2(target: EnergyTarget, config, seed: int, images: bool) -> LearnedSampler:
    """The learned sampler of section 4.5: variant 2 of appendix C.1 (Langevin with flow noise, no gradient in
    the flow), a checkerboard mask for images, outputs at zero (so it starts as MALA with step eps)."""
    eps = config.sampler_eps or (0.01 if images else 0.1)
    mc = LearnedProposalConfig(target.dim, tuple(target.event_shape), width=config.sampler_width,
                               num_steps=config.sampler_flow_steps, eps=eps, variant="langevin",
                               mask="checkerboard" if images else "random", mask_seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LearnedProposal(mc)
    return LearnedSampler(target, model)


class SamplerTraining:
    """The learned sampler trained alongside the energy model (appendix C.2): `train(buffer)` takes `batch`
    buffer states, runs `updates` steps of the entropy objective (eqs. 4.4-4.5, beta adapted toward
    `target_accept`), moving the states by the sampler's MH step each time, and puts them back; it returns the
    mean acceptance. Under DDP the gradients and acceptances are averaged over the ranks (`reduce`)."""

    def __init__(self, kernel: LearnedSampler, config, generator: torch.Generator,
                 reduce: Callable[[torch.Tensor], torch.Tensor]):
        self.kernel, self.model = kernel, kernel.model
        self.config, self.generator, self.reduce = config, generator, reduce
        self.fns = TargetFunctions(kernel.target, differentiable=True)
        self.plain = TargetFunctions(kernel.target, differentiable=False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=config.sampler_lr, betas=config.adam_betas)
        self.log_beta = math.log(config.sampler_beta_init)

    def train(self, buffer: ReplayBuffer, batch: int) -> float:
        c, model = self.config, self.model
        model.train()
        idx, x = buffer.draw(batch, reinit=False)
        shape = x.shape
        x = x.reshape(batch, -1)
        accepts = []
        for _ in range(c.sampler_updates):
            u_x, g_x = self.plain.energy_and_grad(x)
            z0 = torch.randn(x.shape, generator=self.generator, dtype=torch.float64).to(x)
            beta = math.exp(self.log_beta)
            terms, sub = objective_terms(model, x, u_x, g_x, z0, self.fns, "entropy", beta, 100.0, 1e6)
            keep = terms.finite
            objective = (terms if sub is None else sub).per_x.sum() / batch
            self.optimizer.zero_grad(set_to_none=True)
            (-objective).backward()
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.copy_(self.reduce(p.grad))
            if math.isfinite(clip_gradients(self.params, 10.0)):
                self.optimizer.step()
            with torch.no_grad():
                u = torch.rand(terms.log_a.shape, generator=self.generator, dtype=torch.float64).to(terms.log_a)
                acc, take = metropolis_accept(terms.log_a, u, keep)
                x = torch.where(take[:, None], terms.x_new, x)
                mean_acc = float(self.reduce(acc.mean()))
                accepts.append(mean_acc)
                self.log_beta += c.sampler_beta_lr * (mean_acc - c.target_accept)
        model.eval()
        buffer.put(idx, x.reshape(shape))
        return sum(accepts) / len(accepts)

    def state_dict(self) -> Dict[str, Any]:
        return {"description": self.model.describe(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "log_beta": self.log_beta,
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.log_beta = float(state["log_beta"])
        self.generator.set_state(state["rng"])


__all__ = ["learned_variant2", "SamplerTraining"]

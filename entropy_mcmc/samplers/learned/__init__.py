"""The entropy-maximizing learned sampler (thesis chapter 4, appendix C) and its linear baseline, as kernels.

- `LearnedProposal` / `LearnedProposalConfig`: the proposal x' = x + eps f(z0; x, U) (eqs. 4.1-4.3)
  and the two ablations of appendix C.1.
- `LearnedSampler`: the proposal plus the library's Metropolis-Hastings path, exact for any weights.
- `AdaptiveMALA`: gradient-based adaptive MALA with a learned preconditioner (Titsias & Dellaportas 2019).
- `make_learned_kernel`: the registry's `learned` kernel from a trained sampler.

Training them (the entropy objective, presets, training on a target) is an application above this core:
`entropy_mcmc.learning`.
"""
from .adaptive_mala import AdaptiveMALAConfig, AdaptiveMALAProposal
from .build import make_learned_kernel
from .flow import CouplingFlow, checkerboard_masks, random_masks
from .kernel import AdaptiveMALA, LearnedSampler, TargetFunctions, load_proposal, propose_move, save_proposal
from .networks import StepIndexedMLP
from .proposal import LearnedProposal, LearnedProposalConfig, ProposalModel
from .model_kinds import build_model

__all__ = ["LearnedSampler", "make_learned_kernel", "LearnedProposal", "LearnedProposalConfig", "ProposalModel",
           "CouplingFlow", "StepIndexedMLP", "random_masks", "checkerboard_masks", "TargetFunctions", "propose_move",
           "save_proposal", "load_proposal", "build_model", "AdaptiveMALA", "AdaptiveMALAProposal",
           "AdaptiveMALAConfig"]

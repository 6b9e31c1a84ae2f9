"""The entropy-maximizing learned sampler (thesis chapter 4, appendix C) and its linear baseline.

- `LearnedProposal` / `LearnedProposalConfig`: the proposal x' = x + eps f(z0; x, U) (eqs. 4.1-4.3)
  and the two ablations of appendix C.1.
- `LearnedSampler`: the proposal plus the library's Metropolis-Hastings path, exact for any weights.
- `train_sampler` / `SamplerTrainConfig`: the entropy (eqs. 4.4-4.5) or L2-jump objective.
- `AdaptiveMALA`: gradient-based adaptive MALA with a learned preconditioner (Titsias & Dellaportas 2019).
- `make_learned_kernel`: the registry's `learned` kernel, loaded from a file or trained on the target.
- `preset(name)`: Table C.1 hyper-parameters per target, scaled to a 2-core CPU.
"""
from .adaptive_mala import AdaptiveMALAConfig, AdaptiveMALAProposal
from .build import make_learned_kernel, train_on_target
from .flow import CouplingFlow, checkerboard_masks, random_masks
from .kernel import AdaptiveMALA, LearnedSampler, TargetFunctions, load_proposal, propose_move, save_proposal
from .networks import StepIndexedMLP
from .presets import CPU_BUDGET, THESIS_BUDGET, THESIS_TABLE_C1, preset
from .proposal import LearnedProposal, LearnedProposalConfig, ProposalModel
from .model_kinds import build_model
from .training import SamplerTrainConfig, TrainResult, train_sampler

__all__ = ["LearnedSampler", "make_learned_kernel", "train_on_target", "LearnedProposal", "LearnedProposalConfig",
           "ProposalModel", "CouplingFlow",
           "StepIndexedMLP", "random_masks", "checkerboard_masks", "TargetFunctions", "propose_move",
           "save_proposal", "load_proposal", "build_model", "AdaptiveMALA", "AdaptiveMALAProposal",
           "AdaptiveMALAConfig", "SamplerTrainConfig", "TrainResult", "train_sampler", "preset", "THESIS_TABLE_C1",
           "THESIS_BUDGET", "CPU_BUDGET"]

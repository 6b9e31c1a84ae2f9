"""Transition kernels sharing one interface, the Metropolis-Hastings path, adaptation and the runner."""
from .adaptation import DualAveraging, StepSizeAdaptation
from .base import ChainState, StepInfo, TransitionKernel
from .hmc import HMC
from .langevin import UnadjustedLangevin
from .mala import MALA
from .metropolis import MetropolisHastingsKernel, Proposal
from .runner import SampleResult, sample
from .rwm import RandomWalkMetropolis
from .learned import AdaptiveMALA, LearnedProposal, LearnedProposalConfig, LearnedSampler, TrainConfig, train_sampler

__all__ = ["TransitionKernel", "ChainState", "StepInfo", "MetropolisHastingsKernel", "Proposal",
           "RandomWalkMetropolis", "MALA", "HMC", "UnadjustedLangevin", "StepSizeAdaptation", "DualAveraging",
           "sample", "SampleResult"]
__all__ += ["LearnedSampler", "LearnedProposal", "LearnedProposalConfig", "AdaptiveMALA", "TrainConfig",
            "train_sampler"]

"""Transition kernels sharing one interface, the Metropolis-Hastings path, adaptation and the runner."""
from .adaptation import DualAveraging, StepSizeAdaptation
from .base import ChainState, StepInfo, TransitionKernel
from .hmc import HMC
from .jitter import StepSizeJitter
from .langevin import UnadjustedLangevin
from .learned import AdaptiveMALA, LearnedProposal, LearnedProposalConfig, LearnedSampler, TrainConfig, train_sampler
from .mala import MALA
from .metropolis import MetropolisHastingsKernel, Proposal
from .runner import SampleResult, sample
from .rwm import RandomWalkMetropolis

__all__ = ["TransitionKernel", "ChainState", "StepInfo", "MetropolisHastingsKernel", "Proposal",
           "RandomWalkMetropolis", "MALA", "HMC", "UnadjustedLangevin", "StepSizeAdaptation", "StepSizeJitter",
           "DualAveraging", "sample", "SampleResult", "LearnedSampler", "LearnedProposal", "LearnedProposalConfig",
           "AdaptiveMALA", "TrainConfig", "train_sampler"]

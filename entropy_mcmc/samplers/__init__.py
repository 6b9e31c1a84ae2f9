"""Transition kernels sharing one interface, the Metropolis-Hastings path, adaptation, the registry and the runner."""
from .adaptation import DualAveraging, StepSizeAdaptation
from .chees import ChEESAdaptation, ChEESHMC
from .base import ChainState, KernelWrapper, StepInfo, TransitionKernel, find_kernel, spawn_seeds, unwrap
from .handoff import WarmupHandoff
from .mixture import MixtureKernel
from .hmc import HMC
from .jitter import StepSizeJitter
from .langevin import UnadjustedLangevin
from .mala import MALA
from .nuts import NUTS
from .metropolis import MetropolisHastingsKernel, PreconditionedKernel, Proposal, select_chains
from .registry import Capabilities, KernelOption, KernelSpec, build_kernel, get_kernel_spec, kernel_names, register_kernel
from .runner import ConvergenceWarning, SampleResult, sample
from .rwm import RandomWalkMetropolis
from .learned import AdaptiveMALA, LearnedProposal, LearnedProposalConfig, LearnedSampler, TrainConfig, train_sampler
from .run import run_chains

__all__ = ["TransitionKernel", "KernelWrapper", "ChainState", "StepInfo", "MetropolisHastingsKernel",
           "PreconditionedKernel", "Proposal", "select_chains", "unwrap", "find_kernel", "spawn_seeds",
           "RandomWalkMetropolis", "MALA", "HMC", "NUTS", "ChEESHMC", "ChEESAdaptation",
           "UnadjustedLangevin", "MixtureKernel", "WarmupHandoff",
           "StepSizeAdaptation", "StepSizeJitter", "DualAveraging", "Capabilities", "KernelSpec", "KernelOption", "register_kernel",
           "build_kernel", "get_kernel_spec", "kernel_names", "sample", "run_chains", "SampleResult",
           "ConvergenceWarning", "LearnedSampler", "LearnedProposal", "LearnedProposalConfig", "AdaptiveMALA",
           "TrainConfig", "train_sampler"]

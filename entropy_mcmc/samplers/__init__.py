"""Transition kernels sharing one interface, the Metropolis-Hastings path, adaptation, the registry and the runner.

The names below are imported from their modules on first use (PEP 562), so that `samplers.registry` (the kernel
names and specs, e.g. for `entropy-mcmc sample --help`) loads without torch.
"""
from ..lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "adaptation": ("DualAveraging", "StepSizeAdaptation"),
    "chees": ("ChEESAdaptation", "ChEESHMC"),
    "base": ("ChainState", "KernelWrapper", "StepInfo", "TransitionKernel", "find_kernel", "spawn_seeds", "unwrap"),
    "handoff": ("WarmupHandoff",),
    "mixture": ("MixtureKernel",),
    "replica_exchange": ("ReplicaExchange", "TemperedTarget"),
    "hmc": ("HMCKernel",),
    "jitter": ("StepSizeJitter",),
    "langevin": ("UnadjustedLangevin",),
    "mala": ("MALAKernel",),
    "nuts": ("NUTSKernel",),
    "metropolis": ("MetropolisHastingsKernel", "PreconditionedKernel", "Proposal", "select_chains"),
    "registry": ("Capabilities", "KernelOption", "KernelSpec", "build_kernel", "get_kernel_spec", "kernel_names",
                 "register_kernel"),
    "runner": ("ConvergenceWarning", "SampleResult", "sample"),
    "rwm": ("RandomWalkMetropolis",),
    "learned": ("AdaptiveMALA", "LearnedProposal", "LearnedProposalConfig", "LearnedSampler"),
    "launch": ("run_chains",),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["TransitionKernel", "KernelWrapper", "ChainState", "StepInfo", "MetropolisHastingsKernel",
           "PreconditionedKernel", "Proposal", "select_chains", "unwrap", "find_kernel", "spawn_seeds",
           "RandomWalkMetropolis", "MALAKernel", "HMCKernel", "NUTSKernel", "ChEESHMC", "ChEESAdaptation",
           "UnadjustedLangevin", "MixtureKernel", "WarmupHandoff", "ReplicaExchange", "TemperedTarget",
           "StepSizeAdaptation", "StepSizeJitter", "DualAveraging", "Capabilities", "KernelSpec", "KernelOption",
           "register_kernel", "build_kernel", "get_kernel_spec", "kernel_names", "sample", "run_chains",
           "SampleResult", "ConvergenceWarning", "LearnedSampler", "LearnedProposal", "LearnedProposalConfig",
           "AdaptiveMALA"]

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())

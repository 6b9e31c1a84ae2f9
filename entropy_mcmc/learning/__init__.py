"""Training the learned sampler (thesis chapter 4): the proposal-entropy objective (eqs. 4.4-4.5) or the L2 jump,
Table C.1's presets scaled to a CPU, and training on any target from a cold start. The kernels it trains live
in the core (`entropy_mcmc.samplers.learned`); `entropy-mcmc train-sampler` runs this."""
from .on_target import DEFAULT_TRAIN, DEFAULT_WIDTH, train_on_target, warm_start
from .presets import CPU_BUDGET, THESIS_BUDGET, THESIS_TABLE_C1, preset
from .training import OBJECTIVES, SamplerTrainConfig, TrainResult, train_sampler, warm_buffer

__all__ = ["SamplerTrainConfig", "TrainResult", "train_sampler", "warm_buffer", "OBJECTIVES", "train_on_target",
           "warm_start", "DEFAULT_TRAIN", "DEFAULT_WIDTH", "preset", "THESIS_TABLE_C1", "THESIS_BUDGET",
           "CPU_BUDGET"]

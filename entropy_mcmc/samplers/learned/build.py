"""The registry's `learned` kernel on any target: a trained sampler, loaded from a file written by
`LearnedSampler.save` / `TrainResult.save` or given as a model. Training one is an application above the core
(`entropy_mcmc.learning`: `train_sampler`, `train_on_target`; `entropy-mcmc train-sampler`; `PyroKernel(model,
"learned")` trains on the model at its first warmup iteration).
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ...targets.base import Target
from .kernel import LearnedSampler
from .proposal import ProposalModel


def make_learned_kernel(target: Target, sampler: Union[str, Path, ProposalModel, object, None] = None,
                        step_size=None) -> LearnedSampler:
    """A `LearnedSampler` on `target` with `sampler`: a path written by `LearnedSampler.save`/`TrainResult.save`,
    a trained `ProposalModel`, or an object holding one as `.model` (a `TrainResult`)."""
    if sampler is None:
        raise ValueError("kernel 'learned' needs a trained sampler: sampler=PATH (written by `entropy-mcmc "
                         "train-sampler`) or a trained model (entropy_mcmc.learning.train_on_target)")
    if isinstance(sampler, (str, Path)):
        return LearnedSampler.load(sampler, target, step_size=step_size)
    model = getattr(sampler, "model", sampler)
    if not isinstance(model, ProposalModel):
        raise TypeError(f"sampler must be a path, a ProposalModel or a TrainResult, got {type(sampler).__name__}")
    return LearnedSampler(target, model, step_size=step_size)


__all__ = ["make_learned_kernel"]

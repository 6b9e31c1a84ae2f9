"""Rebuild a proposal model from the description saved with it (`ProposalModel.describe()`)."""
from __future__ import annotations

from typing import Any, Dict

from .adaptive_mala import AdaptiveMALAConfig, AdaptiveMALAProposal
from .proposal import LearnedProposal, LearnedProposalConfig, ProposalModel

MODEL_KINDS = {
    LearnedProposal.kind: (LearnedProposal, LearnedProposalConfig),
    AdaptiveMALAProposal.kind: (AdaptiveMALAProposal, AdaptiveMALAConfig),
}


def build_model(description: Dict[str, Any]) -> ProposalModel:
    """A freshly initialized model of the saved kind and config (load the weights afterwards)."""
    desc = dict(description)
    kind = desc.pop("kind", None)
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown proposal model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    cls, config_cls = MODEL_KINDS[kind]
    return cls(config_cls(**desc))


__all__ = ["build_model", "MODEL_KINDS"]

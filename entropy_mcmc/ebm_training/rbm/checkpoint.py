"""Saving and loading RBMs (CAP-RBM or Bernoulli): a dict of tensors and plain values, read with
`torch.load(weights_only=True)` so a file cannot run code."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from .bernoulli import RBM
from .caprbm import CAPRBM

MODEL_CLASSES = {CAPRBM.kind: CAPRBM, RBM.kind: RBM}
FORMAT = "entropy_mcmc.rbm/1"


def model_payload(model) -> Dict[str, Any]:
    if not isinstance(model, tuple(MODEL_CLASSES.values())):
        raise TypeError(f"expected a CAPRBM or an RBM, got {type(model).__name__}")
    return {"format": FORMAT, "kind": model.kind, "config": model.config(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def atomic_save(payload: Dict[str, Any], path: Union[str, Path]) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ValueError(f"cannot write {path}: directory {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, str(tmp))
    os.replace(tmp, path)


def save_model(model, path: Union[str, Path], **extra) -> None:
    """Write `model` (its kind, sizes and weights) and any plain `extra` values to `path`."""
    atomic_save({**model_payload(model), **extra}, path)


def read_payload(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such checkpoint: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, refused globals, truncated files
        raise ValueError(f"{path} is not an RBM checkpoint ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an RBM checkpoint of entropy-mcmc (no '{FORMAT}' format tag); "
                         "it may be a learned sampler or another model")
    return payload


def load_model(path: Union[str, Path], kind: Optional[str] = None, device=None):
    """The model saved at `path`; with `kind` ('caprbm' or 'bernoulli') a checkpoint of the other kind is refused."""
    payload = read_payload(path)
    if kind is not None and payload["kind"] != kind:
        raise ValueError(f"{path} holds a {payload['kind']} model, not a {kind} model")
    config = dict(payload["config"])
    config["dtype"] = getattr(torch, config["dtype"])
    model = MODEL_CLASSES[payload["kind"]](**config, device=device)
    model.load_state_dict(payload["model"])
    return model

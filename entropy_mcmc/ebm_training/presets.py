"""Settings by data shape and scale: the network preset, learning rate, batch, steps and noise range.

cpu: minutes on a 2-core CPU: at most 50k updates for points and 30k for images, ending earlier on a
plateau of the validation criterion or after a time budget (300 s for points, 900 s for images). thesis:
section 3.4 and appendix B.4 (batch 128, Adam at 5e-5, noise in [0.1, 3] geometric for MNIST, the 12-layer
ResNet with 64 filters, 100k updates, no time budget): a GPU job.
The 2-D settings are ours (the thesis has no 2-D experiment): standardized points, MLP 128 x 3,
noise in [0.05, 2] geometric, Adam at 1e-3.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

from .losses import NOISE_PRESETS
from .networks import preset_for_shape

SCALES = ("cpu", "thesis")


def training_preset(event_shape: Sequence[int], scale: str = "cpu") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(network config, `EBMTrainConfig` keywords) for data points of `event_shape` at `scale`."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    _, net = preset_for_shape(event_shape, scale)
    if len(tuple(event_shape)) == 1:
        lo, hi, spacing = NOISE_PRESETS["2d"]
        return net, dict(lr=1e-3, batch_size=128, steps=50000, time_budget=300.0, sigma_min=lo, sigma_max=hi,
                         spacing=spacing)
    lo, hi, spacing = NOISE_PRESETS["thesis-mnist"]
    if scale == "thesis":
        return net, dict(lr=5e-5, batch_size=128, steps=100000, sigma_min=lo, sigma_max=hi, spacing=spacing)
    return net, dict(lr=3e-4, batch_size=64, steps=30000, time_budget=900.0, sigma_min=lo, sigma_max=hi,
                     spacing=spacing)


__all__ = ["training_preset", "SCALES"]

"""Masks of known pixels for inpainting (section 3.4): `AnnealedLangevin(..., mask=, reference=)` clamps them."""
from __future__ import annotations

from typing import Sequence

import torch

MASKS = ("bottom-half", "top-half", "left-half", "right-half", "center")


def image_mask(name: str, shape: Sequence[int]) -> torch.Tensor:
    """A boolean mask, True where a pixel of `[C, H, W]` images is known; `name` is the part to sample
    ("bottom-half": the top half is known, ..., "center": the central square is sampled)."""
    if name not in MASKS:
        raise ValueError(f"unknown mask {name!r}; expected one of {', '.join(MASKS)}")
    if len(shape) != 3:
        raise ValueError(f"image masks need an image shape [C, H, W], got {list(shape)}")
    c, h, w = shape
    m = torch.zeros(c, h, w, dtype=torch.bool)
    if name == "bottom-half":
        m[:, : h // 2] = True
    elif name == "top-half":
        m[:, h // 2:] = True
    elif name == "right-half":
        m[:, :, : w // 2] = True
    elif name == "left-half":
        m[:, :, w // 2:] = True
    else:
        m[:] = True
        m[:, h // 4: h - h // 4, w // 4: w - w // 4] = False
    return m


__all__ = ["image_mask", "MASKS"]

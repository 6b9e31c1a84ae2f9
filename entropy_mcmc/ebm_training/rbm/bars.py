"""The bars data set of thesis appendix A.3: complex images of horizontal and vertical bars.

Each 24x24 image has 2-4 horizontal and 2-4 vertical bars, each 2 pixels wide, of modulus 1 (all other
pixels 0). Along each bar the phase follows a sinusoid with a random offset per bar, and every bar
pixel gets an extra phase perturbation drawn uniformly from (0, 0.6). Choices the thesis leaves open,
stated here: bars sit in the 12 aligned 2-pixel slots of each direction (no two bars of one direction
overlap); the sinusoid is `phase_amplitude * sin(2 pi x / wavelength)` along the bar with amplitude
pi/2 and wavelength 12 pixels; where a vertical bar crosses a horizontal one, the vertical bar's value is kept.
"""
from __future__ import annotations

import math
from typing import Optional

import torch


def make_bars(num: int, size: int = 24, seed: Optional[int] = 0, bar_width: int = 2, min_bars: int = 2,
              max_bars: int = 4, phase_amplitude: float = math.pi / 2, wavelength: float = 12.0,
              phase_noise: float = 0.6, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """`num` bar images as complex units `[num, size * size]` (row-major), modulus 0 or 1."""
    if size % bar_width:
        raise ValueError(f"size ({size}) must be a multiple of bar_width ({bar_width})")
    slots = size // bar_width
    if not 1 <= min_bars <= max_bars <= slots:
        raise ValueError(f"need 1 <= min_bars <= max_bars <= {slots}, got {min_bars}, {max_bars}")
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    coord = torch.arange(size, dtype=torch.float64)
    images = torch.zeros(num, size, size, dtype=torch.complex128)
    for i in range(num):
        for vertical in (False, True):
            count = int(torch.randint(min_bars, max_bars + 1, (1,), generator=g))
            for slot in torch.randperm(slots, generator=g)[:count].tolist():
                offset = float(torch.rand((), generator=g, dtype=torch.float64)) * 2 * math.pi
                noise = torch.rand(bar_width, size, generator=g, dtype=torch.float64) * phase_noise
                phase = phase_amplitude * torch.sin(2 * math.pi * coord / wavelength) + offset + noise
                bar = torch.polar(torch.ones_like(phase), phase)
                rows = slice(slot * bar_width, (slot + 1) * bar_width)
                if vertical:
                    images[i, :, rows] = bar.transpose(0, 1)
                else:
                    images[i, rows, :] = bar
    return images.reshape(num, size * size).to(dtype)

"""Augmentations that define NMCE's constraint D (thesis ch. 5.3): Gaussian noise for points (locality),
batched image augmentations from kornia for images (random resized crop, flip, perspective, brightness
and contrast, the policy of appendix D.2)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn


class GaussianNoise(nn.Module):
    """x + sigma * N(0, I), the toy and synthetic augmentation."""

    def __init__(self, sigma: float = 0.05):
        super().__init__()
        if sigma < 0:
            raise ValueError(f"the noise scale must be non-negative, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + self.sigma * noise


class ImageAugment(nn.Module):
    """Batched image augmentations `[B, C, H, W] -> [B, C, H, W]` (kornia), each image drawn independently.

    Defaults suit small grey-level object or digit images: crops keeping 70-100 % of the area, no flips
    (set `hflip` for objects whose mirror image is the same class), a mild perspective and brightness and
    contrast jitter. kornia draws from torch's global generator (seeded by the training).
    """

    def __init__(self, size: Tuple[int, int], crop_scale=(0.7, 1.0), hflip: float = 0.0, perspective: float = 0.3,
                 perspective_p: float = 0.5, brightness: float = 0.4, contrast: float = 0.4, jitter_p: float = 0.8):
        super().__init__()
        import kornia.augmentation as K

        ops = [K.RandomResizedCrop(tuple(size), scale=tuple(crop_scale), ratio=(0.8, 1.25))]
        if hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=hflip))
        if perspective > 0:
            ops.append(K.RandomPerspective(distortion_scale=perspective, p=perspective_p))
        if brightness > 0 or contrast > 0:
            ops.append(K.ColorJiggle(brightness, contrast, 0.0, 0.0, p=jitter_p))
        self.ops = K.AugmentationSequential(*ops)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"image augmentations take a batch [B, C, H, W], got {tuple(x.shape)}")
        return self.ops(x).clamp(0.0, 1.0)


def make_views(x: torch.Tensor, augment: nn.Module, n_views: int = 2,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """`n_views` independent augmentations of the batch, stacked `[n_views, B, ...]`."""
    if n_views < 2:
        raise ValueError(f"NMCE needs at least two views per point, got {n_views}")
    return torch.stack([augment(x, generator=generator) for _ in range(n_views)])


__all__ = ["GaussianNoise", "ImageAugment", "make_views"]

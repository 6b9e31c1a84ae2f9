"""Networks of NMCE (thesis ch. 5.4): a backbone, then two linear heads for the features z (on the unit
sphere) and the cluster logits. An MLP with ELU for toy data, a small ResNet for images."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLPBackbone(nn.Sequential):
    """`depth` linear layers of width `width`, each followed by ELU (the toy and synthetic backbone).

    Inputs with more than one feature dimension (images) are flattened first."""

    def __init__(self, in_dim: int, width: int = 256, depth: int = 4):
        if depth < 1 or width < 1 or in_dim < 1:
            raise ValueError(f"MLP sizes must be positive, got in_dim={in_dim}, width={width}, depth={depth}")
        layers = []
        for i in range(depth):
            layers += [nn.Linear(in_dim if i == 0 else width, width), nn.ELU()]
        super().__init__(*layers)
        self.out_dim = width

    def forward(self, x):
        return super().forward(x.flatten(1))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected when the shape changes) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet for small images: 3x3 stem without max pooling, four stages of `blocks` basic blocks
    (1,1,1,1 is the ResNet-10 of appendix D.2; 2,2,2,2 is ResNet-18), widths `width * (1, 2, 4, 8)`,
    global average pooling."""

    def __init__(self, in_channels: int = 1, width: int = 32, blocks: Sequence[int] = (1, 1, 1, 1)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, c_in = [], width
        for i, n in enumerate(blocks):
            c_out = width * 2 ** i
            stages += [BasicBlock(c_in if j == 0 else c_out, c_out, 1 if i == 0 or j > 0 else 2) for j in range(n)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.out_dim = c_in

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)


class ClusterNetwork(nn.Module):
    """Backbone -> (optional pre-feature layer: linear, batch norm, ReLU) -> feature head z and cluster head.

    `forward(x)` returns `(z, logits)` with `z` on the unit sphere. `reset_heads()` re-initializes both
    heads (stage 2 of the training); `detach_backbone=True` stops gradients into the backbone.
    """

    def __init__(self, backbone: nn.Module, z_dim: int, n_clusters: int, pre_feature: int = 0):
        super().__init__()
        if z_dim < 1 or n_clusters < 1:
            raise ValueError(f"z_dim and n_clusters must be positive, got {z_dim} and {n_clusters}")
        self.backbone = backbone
        dim = backbone.out_dim
        self.pre_feature = nn.Identity() if not pre_feature else nn.Sequential(
            nn.Linear(dim, pre_feature), nn.BatchNorm1d(pre_feature), nn.ReLU())
        dim = pre_feature or dim
        self.subspace = nn.Linear(dim, z_dim)
        self.cluster = nn.Linear(dim, n_clusters)
        self.z_dim, self.n_clusters = z_dim, n_clusters

    def features(self, x: torch.Tensor, detach_backbone: bool = False) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_backbone):
            return self.pre_feature(self.backbone(x))

    def forward(self, x: torch.Tensor, detach_backbone: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x, detach_backbone)
        return F.normalize(self.subspace(h), dim=-1), self.cluster(h)

    def reset_heads(self) -> None:
        self.subspace.reset_parameters()
        self.cluster.reset_parameters()

    def backbone_parameters(self):
        return list(self.backbone.parameters()) + list(self.pre_feature.parameters())


__all__ = ["MLPBackbone", "SmallResNet", "BasicBlock", "ClusterNetwork"]

"""Energy networks `[batch, *event] -> [batch]`: an MLP for points, the thesis' ResNet for images (appendix B.4),
both ending in the generalized quadratic head of eq. B.3, and an isotropic Gaussian energy with a closed form.

Every network keeps the keywords it was built with in `config`, so `build_network(model.config)` rebuilds it
(checkpoints store the config next to the weights). Presets: `network_preset(name)` for "2d", "digits",
"mnist" (CPU scale) and "mnist-thesis" (the thesis' 12-layer ResNet with 64 filters).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "silu": nn.SiLU, "softplus": nn.Softplus, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class QuadraticHead(nn.Module):
    """E = (a.h + b1)(c.h + b2) + sum_i d_i h_i^2 + b3, eq. B.3: energies that can grow quadratically
    with the noise magnitude, as the gradient of a denoiser grows linearly."""

    def __init__(self, features: int):
        super().__init__()
        self.first = nn.Linear(features, 1)
        self.second = nn.Linear(features, 1)
        self.square = nn.Linear(features, 1)  # d and b3

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (self.first(h) * self.second(h) + self.square(h * h)).squeeze(-1)


class MLPEnergy(nn.Module):
    """An MLP energy for points `[batch, dim]`: `depth` hidden layers of `width` units, then the eq. B.3 head
    (`head="quadratic"`) or a linear one (`head="linear"`)."""

    def __init__(self, dim: int = 2, width: int = 128, depth: int = 3, activation: str = "elu",
                 head: str = "quadratic"):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"dim, width and depth must be positive, got {dim}, {width}, {depth}")
        if head not in ("quadratic", "linear"):
            raise ValueError(f"head must be 'quadratic' or 'linear', got {head!r}")
        self.config = dict(kind="mlp", dim=dim, width=width, depth=depth, activation=activation, head=head)
        self.event_shape = torch.Size([dim])
        layers, d = [], dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), _activation(activation)]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = QuadraticHead(width) if head == "quadratic" else nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).reshape(x.shape[0])


class ResidualBlock(nn.Module):
    """act -> conv3x3 -> act -> conv3x3 (-> mean pool), no normalization (appendix B.4); the shortcut is the
    identity, or a mean pool and a 1x1 convolution where the block downsamples or changes the width."""

    def __init__(self, channels_in: int, channels_out: int, downsample: bool, activation: str):
        super().__init__()
        self.act1, self.act2 = _activation(activation), _activation(activation)
        self.conv1 = nn.Conv2d(channels_in, channels_in, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.downsample = downsample
        self.shortcut = (nn.Conv2d(channels_in, channels_out, 1)
                         if downsample or channels_in != channels_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.act2(self.conv1(self.act1(x))))
        s = x
        if self.downsample:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return self.shortcut(s) + h


class ResNetEnergy(nn.Module):
    """The thesis' ResNet energy (appendix B.4): a 3x3 convolution to `filters` channels, `stages` stages of
    `blocks` residual blocks whose first block halves the resolution and doubles the filters, ELU, no
    normalization, and the eq. B.3 quadratic head on the flattened output. Images `[batch, C, H, W]` are
    zero-padded to `pad_to` (MNIST: 28 -> 32) inside the network, so samples keep the data's shape."""

    def __init__(self, channels: int = 1, image_size: int = 28, filters: int = 64, stages: int = 3,
                 blocks: int = 2, pad_to: int = 0, activation: str = "elu"):
        super().__init__()
        side = max(image_size, pad_to)
        if side % (2 ** stages):
            raise ValueError(f"an image of side {side} cannot be halved {stages} times; set pad_to")
        self.config = dict(kind="resnet", channels=channels, image_size=image_size, filters=filters,
                           stages=stages, blocks=blocks, pad_to=pad_to, activation=activation)
        self.event_shape = torch.Size([channels, image_size, image_size])
        self.pad = (side - image_size) // 2, side - image_size - (side - image_size) // 2
        self.stem = nn.Conv2d(channels, filters, 3, padding=1)
        layers, c = [], filters
        for _ in range(stages):
            layers.append(ResidualBlock(c, 2 * c, True, activation))
            c *= 2
            layers += [ResidualBlock(c, c, False, activation) for _ in range(blocks - 1)]
        self.body = nn.Sequential(*layers)
        self.head = QuadraticHead(c * (side // 2 ** stages) ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad[0] or self.pad[1]:
            lo, hi = self.pad
            x = F.pad(x, (lo, hi, lo, hi))
        return self.head(self.body(self.stem(x)).flatten(1))


class GaussianEnergy(nn.Module):
    """E(x) = |x - mean|^2 / (2 var): an isotropic Gaussian energy with learnable `mean` and `log_var`, whose
    score-matching minimisers are known in closed form (used by the tests)."""

    def __init__(self, dim: int = 2, mean: float = 0.0, var: float = 1.0):
        super().__init__()
        self.config = dict(kind="gaussian", dim=dim, mean=mean, var=var)
        self.event_shape = torch.Size([dim])
        self.mean = nn.Parameter(torch.full((dim,), float(mean)))
        self.log_var = nn.Parameter(torch.tensor(math.log(var)))

    @property
    def var(self) -> torch.Tensor:
        return self.log_var.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean).pow(2).flatten(1).sum(1) / (2 * self.var)


class QuadraticEnergy(nn.Module):
    """E(x) = (x - mean)^T P (x - mean) / 2 with P = L L^T, L lower-triangular with a positive (log-parametrized)
    diagonal: the energy of a full-covariance Gaussian, whose maximum-likelihood fit is the sample mean and
    covariance (used by the tests of contrastive training)."""

    def __init__(self, dim: int = 2):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.config = dict(kind="quadratic", dim=dim)
        self.event_shape = torch.Size([dim])
        self.mean = nn.Parameter(torch.zeros(dim))
        self.log_diag = nn.Parameter(torch.zeros(dim))
        self.lower = nn.Parameter(torch.zeros(dim * (dim - 1) // 2))

    @property
    def cholesky(self) -> torch.Tensor:
        """L with P = L L^T."""
        d = self.mean.shape[0]
        rows, cols = torch.tril_indices(d, d, -1, device=self.mean.device)
        chol = torch.diag(self.log_diag.exp())
        return chol.index_put((rows, cols), self.lower)

    @property
    def covariance(self) -> torch.Tensor:
        """P^-1, the covariance of exp(-E)."""
        return torch.cholesky_inverse(self.cholesky)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = (x - self.mean) @ self.cholesky
        return 0.5 * r.pow(2).sum(1)


NETWORKS = {"mlp": MLPEnergy, "resnet": ResNetEnergy, "gaussian": GaussianEnergy, "quadratic": QuadraticEnergy}

PRESETS: Dict[str, Dict[str, Any]] = {
    "2d": dict(kind="mlp", dim=2, width=128, depth=3),
    "digits": dict(kind="resnet", channels=1, image_size=8, filters=32, stages=2, blocks=1),
    "mnist": dict(kind="resnet", channels=1, image_size=28, filters=16, stages=3, blocks=1, pad_to=32),
    # the thesis' MNIST network: a 12-layer ResNet, 64 filters, input padded to 32x32 (appendix B.4)
    "mnist-thesis": dict(kind="resnet", channels=1, image_size=28, filters=64, stages=3, blocks=2, pad_to=32),
}


def build_network(config: Dict[str, Any]) -> nn.Module:
    """A freshly initialized network from a config (`model.config`, or a `PRESETS` entry)."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {', '.join(NETWORKS)}")
    try:
        return NETWORKS[kind](**config)
    except TypeError as err:
        raise ValueError(f"bad {kind} network config {config}: {err}") from None


def network_preset(name: str) -> Dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown network preset {name!r}; expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def preset_for_shape(event_shape: Sequence[int], scale: str = "cpu") -> Tuple[str, Dict[str, Any]]:
    """The network preset that fits data points of `event_shape`: an MLP for vectors, a ResNet for
    `[C, H, W]` images (the thesis' MNIST ResNet with `scale="thesis"`)."""
    shape = tuple(event_shape)
    if len(shape) == 1:
        return "2d" if shape[0] == 2 else "mlp", dict(PRESETS["2d"], dim=shape[0])
    if len(shape) == 3 and shape[1] == shape[2]:
        c, side = shape[0], shape[1]
        if side == 8:
            return "digits", dict(PRESETS["digits"], channels=c)
        name = "mnist-thesis" if scale == "thesis" else "mnist"
        stages = PRESETS[name]["stages"]
        pad_to = -(-side // 2 ** stages) * 2 ** stages
        return name, dict(PRESETS[name], channels=c, image_size=side, pad_to=pad_to if pad_to != side else 0)
    raise ValueError(f"no network preset for data points of shape {list(shape)}: expected [dim] vectors or "
                     "square [channels, side, side] images")


__all__ = ["MLPEnergy", "ResNetEnergy", "GaussianEnergy", "QuadraticEnergy", "QuadraticHead", "build_network",
           "network_preset", "preset_for_shape", "PRESETS"]

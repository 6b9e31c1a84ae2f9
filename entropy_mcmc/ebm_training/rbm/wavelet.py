"""MNIST in a complex wavelet domain for the CAP-RBM (thesis appendix A.3, Fig. 2.1b,c).

The dual-tree complex wavelet transform (`pytorch_wavelets`, near_sym_b / qshift_b filters, 4 levels)
turns a 28x28 digit into oriented complex coefficients in bands of 14x14, 7x7, 4x4 and 2x2 (6
orientations each) plus a lowpass image. As in the thesis:

* two orientation outputs are conjugated (`CONJUGATED`, the two whose phase runs against the others
  when the digit moves down), so phases progress mostly the same way under translation;
* only the two middle bands (7x7 and 4x4: (49 + 16) * 6 = 390 units) are learned;
* each band of each image is normalised by its maximum modulus, coefficients below 0.15 are set to 0
  and the rest to modulus 1 (`to_unit_modulus`);
* for reconstruction, each learned band's modulus is the mean over training images of that band's
  maximum modulus, the finest band (14x14) is 0, and the 2x2 band and the lowpass image are their
  training averages.

The model only knows relative phases; `decode(..., align=True)` picks the global phase (among 32)
whose image correlates best with the mean training digit, the automated form of the thesis' "global
phase ... set by hand".
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from ..data import read_idx
from .caprbm import to_unit_modulus

LEVELS = 4
LEARNED = (1, 2)          # level indices of the 7x7 and 4x4 bands
CONJUGATED = (4, 5)       # orientation indices conjugated after the transform
THRESHOLD = 0.15
MNIST_FILES = ("t10k-images-idx3-ubyte", "train-images-idx3-ubyte")


def _pytorch_wavelets():
    """Import pytorch_wavelets. Its coefficient loader does `from pkg_resources import resource_stream` at import,
    and setuptools >= 81 no longer ships pkg_resources: then a stand-in over importlib.resources is present
    only while pytorch_wavelets imports (left in sys.modules it would mislead other users of pkg_resources)."""
    import importlib.util
    import sys

    shim = None
    if "pytorch_wavelets" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        import importlib.resources
        import types

        shim = types.ModuleType("pkg_resources")
        shim.resource_stream = lambda package, name: importlib.resources.files(package).joinpath(name).open("rb")
        sys.modules["pkg_resources"] = shim
    try:
        import pytorch_wavelets
    except ImportError as err:
        raise ImportError("the MNIST wavelet data needs the pytorch_wavelets and PyWavelets packages "
                          "(pip install 'entropy-mcmc[rbm]')") from err
    finally:
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]
    return pytorch_wavelets


def find_mnist(directory: Optional[Union[str, Path]] = None) -> Path:
    """The MNIST images file in `directory` (or $ENTROPY_MCMC_MNIST, or ../shared/data/mnist)."""
    candidates = [directory] if directory else [os.environ.get("ENTROPY_MCMC_MNIST"), "../shared/data/mnist",
                                                "shared/data/mnist"]
    for d in filter(None, candidates):
        for stem in MNIST_FILES:
            for suffix in (".gz", ""):
                p = Path(d) / (stem + suffix)
                if p.is_file():
                    return p
    where = directory or "$ENTROPY_MCMC_MNIST or ../shared/data/mnist"
    raise ValueError(f"no MNIST images ({' or '.join(MNIST_FILES)}, gzipped or not) in {where}")


def load_mnist(directory: Optional[Union[str, Path]] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """MNIST images `[n, 28, 28]` in [0, 1] (float32) and labels `[n]` (None if the labels file is absent)."""
    path = find_mnist(directory)
    images = torch.as_tensor(read_idx(path).astype(np.float32) / 255.0)
    label_path = Path(str(path).replace("images-idx3", "labels-idx1"))
    labels = torch.as_tensor(read_idx(label_path).astype(np.int64)) if label_path.is_file() else None
    return images, labels


class WaveletCodec:
    """Digits to CAP-RBM units and back (see the module docstring). `fit(images)` takes the statistics
    reconstruction needs; `state_dict()` / `from_state_dict` store them in a checkpoint."""

    def __init__(self, band_scale: torch.Tensor, coarse_mean: torch.Tensor, lowpass_mean: torch.Tensor,
                 mean_image: torch.Tensor):
        pw = _pytorch_wavelets()
        self.forward_transform = pw.DTCWTForward(J=LEVELS, biort="near_sym_b", qshift="qshift_b")
        self.inverse_transform = pw.DTCWTInverse(biort="near_sym_b", qshift="qshift_b")
        self.band_scale, self.coarse_mean = band_scale, coarse_mean
        self.lowpass_mean, self.mean_image = lowpass_mean, mean_image

    # ------------------------------------------------------------------ transform

    def _bands(self, images: torch.Tensor):
        if images.dim() != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images must have shape [n, 28, 28], got {list(images.shape)}")
        with torch.no_grad():
            low, highs = self.forward_transform(images.float()[:, None])
        bands = [torch.complex(h[:, 0, ..., 0], h[:, 0, ..., 1]) for h in highs]   # [n, 6, H, W]
        for b in bands:
            b[:, list(CONJUGATED)] = b[:, list(CONJUGATED)].conj()
        return low[:, 0], bands

    @staticmethod
    def _band_max(band: torch.Tensor) -> torch.Tensor:
        return band.abs().flatten(1).amax(1).clamp_min(1e-12)

    @classmethod
    def fit(cls, images: torch.Tensor) -> "WaveletCodec":
        codec = cls(torch.ones(len(LEARNED)), torch.zeros(0), torch.zeros(0), images.float().mean(0))
        low, bands = codec._bands(images)
        codec.band_scale = torch.stack([cls._band_max(bands[i]).mean() for i in LEARNED])
        codec.coarse_mean = bands[LEVELS - 1].mean(0)
        codec.lowpass_mean = low.mean(0)
        return codec

    @property
    def num_units(self) -> int:
        return 6 * sum(s * s for s in (7, 4))

    def encode(self, images: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
        """Digits `[n, 28, 28]` to units `[n, 390]` (complex64, modulus 0 or 1)."""
        _, bands = self._bands(images)
        parts = []
        for i in LEARNED:
            b = bands[i]
            b = b / self._band_max(b)[:, None, None, None]
            parts.append(to_unit_modulus(b.flatten(1), threshold))
        return torch.cat(parts, 1).to(torch.complex64)

    def decode(self, units: torch.Tensor, align: bool = False) -> torch.Tensor:
        """Units or rates `[n, 390]` (complex) to digits `[n, 28, 28]`; `align` sets each one's global phase."""
        units = units.detach().to(torch.complex64)
        if units.dim() != 2 or units.shape[1] != self.num_units:
            raise ValueError(f"units must have shape [n, {self.num_units}], got {list(units.shape)}")
        if align:
            phases = torch.exp(1j * torch.arange(32) * (2 * math.pi / 32)).to(torch.complex64)
            n = units.shape[0]
            cands = self._decode((units[:, None] * phases[None, :, None]).reshape(n * 32, -1)).reshape(n, 32, -1)
            ref = (self.mean_image - self.mean_image.mean()).flatten()
            score = ((cands - cands.mean(-1, keepdim=True)) * ref).sum(-1)
            return cands[torch.arange(n), score.argmax(1)].reshape(n, 28, 28)
        return self._decode(units).reshape(-1, 28, 28)

    def _decode(self, units: torch.Tensor) -> torch.Tensor:
        n = units.shape[0]
        sizes = [6 * 7 * 7, 6 * 4 * 4]
        learned = [u.reshape(n, 6, s, s) * scale for u, s, scale in
                   zip(torch.split(units, sizes, 1), (7, 4), self.band_scale)]
        bands = [torch.zeros(n, 6, 14, 14, dtype=torch.complex64), *learned,
                 self.coarse_mean.expand(n, -1, -1, -1).clone()]
        highs = []
        for b in bands:
            b = b.clone()
            b[:, list(CONJUGATED)] = b[:, list(CONJUGATED)].conj()
            highs.append(torch.stack([b.real, b.imag], -1)[:, None])
        low = self.lowpass_mean.expand(n, -1, -1)[:, None]
        with torch.no_grad():
            return self.inverse_transform((low, highs))[:, 0].flatten(1)

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {"band_scale": self.band_scale, "coarse_mean": self.coarse_mean, "lowpass_mean": self.lowpass_mean,
                "mean_image": self.mean_image}

    @classmethod
    def from_state_dict(cls, state: Dict[str, torch.Tensor]) -> "WaveletCodec":
        return cls(state["band_scale"], state["coarse_mean"], state["lowpass_mean"], state["mean_image"])

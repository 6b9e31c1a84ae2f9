"""Draws written to a NetCDF file as they are recorded, for runs whose draws would not fit in memory.

The file is ArviZ InferenceData (groups posterior, sample_stats, and warmup_* when collected) as
`to_arviz().to_netcdf(compress=False)` writes it: dtypes kept (float32 stays float32), booleans as int8 flagged
`dtype: bool` as xarray writes them. Each variable is one contiguous HDF5 dataset of its full size, written a block
of draws at a time; contiguous, so that a block of scalars reads back quickly for the summary.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from typing import Dict, Optional, Tuple

import numpy as np
import torch

# Statistics recorded per chain and draw, counted in the memory a run needs: HMC records 22 bytes, NUTS and ChEES 38.
STAT_BYTES = 40
BLOCK_BYTES = 64 * 2 ** 20  # the most a streamed run buffers between writes


def available_memory() -> Optional[int]:
    """Bytes of memory available now (Linux: MemAvailable; elsewhere free pages), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def default_memory_budget() -> float:
    """Three quarters of the memory available now (unbounded where the platform does not say)."""
    available = available_memory()
    return math.inf if available is None else 0.75 * available


class NetCDFWriter:
    """Writes blocks of draws `{name: [chains, n, ...]}` into groups of a new NetCDF file at `path`."""

    def __init__(self, path: str, chains: int):
        import h5netcdf

        self.path, self.chains = str(path), chains
        self.file = h5netcdf.File(self.path, "w")

    def write(self, group: str, start: int, total: int, arrays: Dict[str, np.ndarray]) -> None:
        """Write `arrays` at draws `start:start + n` of `group`, which holds `total` draws (made at the first call)."""
        g = self.file.groups[group] if group in self.file.groups else self._create(group, total, arrays)
        for name, a in arrays.items():
            g.variables[name][:, start:start + a.shape[1]] = a.view(np.int8) if a.dtype == bool else a

    def _create(self, group: str, total: int, arrays: Dict[str, np.ndarray]):
        from arviz.data.base import make_attrs

        g = self.file.create_group(group)
        g.attrs.update(make_attrs())  # created_at, arviz_version: what ArviZ stamps on a group
        g.dimensions = {"chain": self.chains, "draw": total}
        g.create_variable("chain", ("chain",), data=np.arange(self.chains))
        g.create_variable("draw", ("draw",), data=np.arange(total))
        for name, a in arrays.items():
            dims = ("chain", "draw") + tuple(f"{name}_dim_{i}" for i in range(a.ndim - 2))
            for dim, size in zip(dims[2:], a.shape[2:]):
                g.dimensions[dim] = size
                g.create_variable(dim, (dim,), data=np.arange(size))
            v = g.create_variable(name, dims, dtype=np.int8 if a.dtype == bool else a.dtype)
            if a.dtype == bool:
                v.attrs["dtype"] = "bool"  # xarray reads it back as bool
        return g

    def close(self) -> None:
        self.file.close()


def write_attrs(path: str, attrs: Dict[str, Dict[str, object]]) -> None:
    """Set `{group: {name: value}}` attributes in the NetCDF file at `path`."""
    import h5netcdf

    with h5netcdf.File(str(path), "a") as f:
        for group, values in attrs.items():
            if group in f.groups:
                f.groups[group].attrs.update(values)


class FileVariables(Mapping):
    """A streamed run's recorded variables or statistics in its NetCDF file, read whole on access as CPU tensors.

    `sources[name]` says how: `("plain", var)`, `("neg", var)` (minus it) or `("polar", amplitude, phase)`.
    `shape(name)` and `mean(name)` read no more than a block of draws at a time.
    """

    def __init__(self, path: str, group: str, sources: Dict[str, Tuple[str, ...]]):
        self.path, self.group, self.sources = str(path), group, dict(sources)

    def __getitem__(self, name: str) -> torch.Tensor:
        kind, *columns = self.sources[name]
        with self._open() as g:
            t = [torch.from_numpy(_decoded(g.variables[c], ...)) for c in columns]
        return -t[0] if kind == "neg" else torch.polar(*t) if kind == "polar" else t[0]

    def __iter__(self):
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def shape(self, name: str) -> Tuple[int, ...]:
        with self._open() as g:
            return tuple(g.variables[self.sources[name][1]].shape)

    def mean(self, name: str) -> float:
        """Mean over chains, draws and event of a real variable (float64 sums, a block of draws at a time)."""
        kind, column = self.sources[name][:2]
        with self._open() as g:
            v = g.variables[column]
            shape = v.shape
            step = max(1, BLOCK_BYTES // max(1, v.dtype.itemsize * math.prod(shape) // shape[1]))
            total = sum(_decoded(v, np.s_[:, i:i + step]).sum(dtype=np.float64) for i in range(0, shape[1], step))
        return float(-total if kind == "neg" else total) / math.prod(shape)

    @contextlib.contextmanager
    def _open(self):
        import h5netcdf

        with h5netcdf.File(self.path, "r") as f:
            yield f.groups[self.group]


def _decoded(v, index) -> np.ndarray:
    a = v[index]
    return a.view(bool) if v.attrs.get("dtype") == "bool" else a


__all__ = ["FileVariables", "NetCDFWriter", "available_memory", "default_memory_budget", "write_attrs"]

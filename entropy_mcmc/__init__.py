"""entropy-mcmc: PyTorch MCMC transition kernels sharing one interface, vectorized over chains."""
__version__ = "0.1.0"

from .lazy import lazy_exports as _lazy_exports

# The NumPyro-style front door (`from entropy_mcmc import MCMC, HMC`), imported on first use so that
# `import entropy_mcmc` stays light.
_LAZY = {"MCMC": "infer", "HMC": "infer", "NUTS": "infer", "MALA": "infer", "RWM": "infer"}
__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())

"""entropy-mcmc: PyTorch MCMC transition kernels sharing one interface, vectorized over chains."""
__version__ = "0.1.0"

# The NumPyro-style front door (`from entropy_mcmc import MCMC, HMC`), imported on first use so that
# `import entropy_mcmc` stays light.
_LAZY = {"MCMC": "infer", "HMC": "infer", "MALA": "infer", "RWM": "infer"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

"""entropy-mcmc: PyTorch MCMC transition kernels sharing one interface, vectorized over chains."""
__version__ = "0.1.0"

"""Training energy-based models with any kernel as the negative sampler (later work)."""
from .rbm import CAPRBM, RBM, BernoulliRBM  # noqa: F401  (thesis ch. 2: CAP-RBM, Bernoulli RBM)

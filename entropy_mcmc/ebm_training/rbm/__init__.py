"""Restricted Boltzmann machines: the complex amplitude-phase RBM of thesis ch. 2 and a Bernoulli RBM beside it."""
from .bernoulli import RBM
from .caprbm import CAPRBM, check_units, to_unit_modulus
from .estimator import BernoulliRBM
from .gibbs import BernoulliGibbs, CAPRBMGibbs, RBMState

__all__ = ["CAPRBM", "RBM", "BernoulliRBM", "CAPRBMGibbs", "BernoulliGibbs", "RBMState", "check_units", "to_unit_modulus"]

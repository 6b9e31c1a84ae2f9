"""Restricted Boltzmann machines: the complex amplitude-phase RBM of thesis ch. 2 and a Bernoulli RBM beside it.

caprbm.py (model, eq. A.3-A.5, rules 2.5-2.8), bernoulli.py (binary model), estimator.py (scikit-learn's
BernoulliRBM shape), circular.py (von Mises sampler, log I0), gibbs.py (block Gibbs kernels, registered as
`caprbm-gibbs` and `bernoulli-gibbs`), training.py (CD-k / PCD), checkpoint.py, bars.py (appendix A.3 data),
wavelet.py (MNIST in the complex wavelet domain), data.py (data sets by name), stability.py (Fig. 2.1a metrics
and figures).
"""
from .bernoulli import RBM
from .caprbm import CAPRBM, check_units, to_unit_modulus
from .checkpoint import load_model, save_model
from .estimator import BernoulliRBM
from .gibbs import BernoulliGibbs, CAPRBMGibbs, RBMState
from .training import RBMTrainConfig, Trainer, train_rbm

__all__ = ["CAPRBM", "RBM", "BernoulliRBM", "CAPRBMGibbs", "BernoulliGibbs", "RBMState", "check_units",
           "to_unit_modulus", "RBMTrainConfig", "Trainer", "train_rbm", "load_model", "save_model"]

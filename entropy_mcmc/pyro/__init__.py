"""Pyro bridge: our kernels inside `pyro.infer.MCMC` (`PyroKernel`), and any Pyro model as a
chain-vectorized `Target` for our runner (`PyroTarget`, `target_from_model`)."""
from .inference_data import from_pyro
from .kernel import PyroKernel, find_reasonable_step_size
from ..targets.layout import SiteLayout
from .models import (blr_target, eight_schools_model, hierarchical_normal_data, hierarchical_normal_model,
                     load_blr_data, logistic_regression_model)
from .target import PotentialTarget, PyroTarget, target_from_model

__all__ = ["PyroKernel", "find_reasonable_step_size", "from_pyro", "SiteLayout",
           "PyroTarget", "PotentialTarget", "target_from_model", "logistic_regression_model", "load_blr_data",
           "blr_target", "eight_schools_model", "hierarchical_normal_model",
           "hierarchical_normal_data"]

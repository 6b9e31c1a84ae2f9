"""posteriordb (stan-dev/posteriordb) posteriors as Pyro models, with their reference draws.

`models.PORTS` maps a posterior's name to its `Port` (the Pyro model written from the Stan program,
the data preparation, the compared parameters); `reference.load_posterior` reads a posterior database
folder (a full clone or a subset; the path is always an argument) and `reference.compare` scores draws
against the reference draws with Monte Carlo standard-error tolerances.
"""
from .models import PORTS, Port, get_port
from .reference import Posterior, add_deterministic, compare, load_posterior

__all__ = ["PORTS", "Port", "get_port", "Posterior", "load_posterior", "add_deterministic", "compare"]

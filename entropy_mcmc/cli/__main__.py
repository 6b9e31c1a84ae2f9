"""`python -m entropy_mcmc.cli` (and `torchrun -m entropy_mcmc.cli sample ...`)."""
import sys

from . import main

sys.exit(main())

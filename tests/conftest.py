import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("EMCMC_NB_SMALL", "1")
